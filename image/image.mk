# The OS image: included by the top-level Makefile (`include image/image.mk`),
# or run on its own: make -f image/image.mk image
#
#   make image        Debian bookworm arm64 root file system + GPT disk image in build/image/
#                     (cold: Debian under emulation, ~15 min on 2 cores; cached after that)
#   make test-image   boot that root file system under systemd-nspawn and check the units
#                     (slow, not part of `make test`)
#
# Switches: IMAGE_WITH_LLAMA=1   compile llama-cpp-python into the image (about an hour under qemu)
#           IMAGE_WITH_KERNEL=0  no kernel/firmware (a root file system for containers only)
#           IMAGE_CACHE=dir      where the slow stages are kept (default ~/.cache/appliance/image)
#           BUNDLE_KEYRING=ca.pem  the CA the box's RAUC trusts (release builds; default: the
#                                development CA of `make bundle`, in FIRMWARE_KEYS_DIR)
# Needs root (debootstrap, chroot, mkfs) and the host's verified models (`make models`).

VENV        ?= .venv
PY          ?= $(VENV)/bin/python
IMAGE_OUT   ?= build/image
IMAGE_CACHE ?= $(HOME)/.cache/appliance/image
# The same defaults as firmware/firmware.mk: the image trusts the CA `make bundle` signs with.
FIRMWARE_KEYS_DIR ?= $(HOME)/.cache/appliance/firmware-keys
BUNDLE_KEYRING    ?=

# The models and htmx come from the host's install; within the main Makefile
# these are its own targets, on their own the files only have to exist.
IMAGE_PREREQS ?= $(wildcard $(VENV)/.stamp-models) $(HTMX_JS)

.PHONY: image image-tools test-image

image: $(IMAGE_PREREQS)
	IMAGE_OUT=$(abspath $(IMAGE_OUT)) IMAGE_CACHE=$(IMAGE_CACHE) PY=$(abspath $(PY)) \
	  IMAGE_WITH_LLAMA=$(IMAGE_WITH_LLAMA) IMAGE_WITH_KERNEL=$(IMAGE_WITH_KERNEL) \
	  FIRMWARE_KEYS_DIR=$(FIRMWARE_KEYS_DIR) BUNDLE_KEYRING=$(BUNDLE_KEYRING) \
	  bash image/build.sh all

image-tools:
	bash image/build.sh tools

# Boots $(IMAGE_OUT)/rootfs read-only under systemd-nspawn (arm64 through qemu-user)
# and runs tests/image/; prints boot-to-READY, the watchdog restart and the whole time.
test-image: image-tools
	@test -x $(IMAGE_OUT)/rootfs/opt/practice-box/bin/appliance || { echo "no image in $(IMAGE_OUT): run make image first"; exit 2; }
	@start=$$(date +%s); \
	APPLIANCE_IMAGE_TEST=$(abspath $(IMAGE_OUT))/rootfs \
	  FIRMWARE_KEYS_DIR=$(FIRMWARE_KEYS_DIR) BUNDLE_KEYRING=$(BUNDLE_KEYRING) $(VENV)/bin/pytest -q -s -p no:cacheprovider tests/image; rc=$$?; \
	echo "==> test-image took $$(( $$(date +%s) - start )) s"; exit $$rc
