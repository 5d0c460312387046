# Signed A/B update bundles (firmware/README.md). Included from the top-level Makefile:
#   make bundle [ROOTFS=<dir|ext4|squashfs>] [BUNDLE_VERSION=...] [BUNDLE_FORMAT=verity|plain]
#               [BUNDLE_KEY=... BUNDLE_CERT=... BUNDLE_KEYRING=...]   (release key; default: a development key)
# Guarded, so that `make -f Makefile -f firmware/firmware.mk` works whether or not
# the Makefile already includes this file.
ifndef FIRMWARE_MK_INCLUDED
FIRMWARE_MK_INCLUDED := 1

# What `make bundle` and the update tests run: rauc (bundle, info, extract, service,
# install), mksquashfs (inside rauc bundle), mkfs.ext4, openssl, a private dbus-daemon.
FIRMWARE_APT := rauc squashfs-tools e2fsprogs openssl dbus-daemon
APT_PACKAGES += $(FIRMWARE_APT)

ROOTFS            ?= build/image/rootfs
BUNDLE_OUT        ?= build/firmware
BUNDLE_VERSION    ?=
BUNDLE_FORMAT     ?= verity
BUNDLE_COMPATIBLE ?= practice-box-rpi5
# Development keys live here, outside the repository, made on first use.
FIRMWARE_KEYS_DIR ?= $(HOME)/.cache/appliance/firmware-keys
BUNDLE_KEY        ?=
BUNDLE_CERT       ?=
BUNDLE_KEYRING    ?=

.PHONY: bundle firmware-tools

bundle: firmware-tools
	python3 firmware/make_bundle.py --rootfs "$(ROOTFS)" --out "$(BUNDLE_OUT)" \
	  --format $(BUNDLE_FORMAT) --compatible $(BUNDLE_COMPATIBLE) --keys-dir "$(FIRMWARE_KEYS_DIR)" \
	  $(if $(BUNDLE_VERSION),--version "$(BUNDLE_VERSION)") \
	  $(if $(BUNDLE_KEY),--key "$(BUNDLE_KEY)") $(if $(BUNDLE_CERT),--cert "$(BUNDLE_CERT)") \
	  $(if $(BUNDLE_KEYRING),--keyring "$(BUNDLE_KEYRING)")

# The apt stamp of the Makefile is made once; a checkout that has it already
# would never get these, so they are checked on their own (a dpkg query: instant).
firmware-tools:
	@missing=""; for p in $(FIRMWARE_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> apt: installing$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The update tests run real RAUC; `make test` makes sure it is there.
test: firmware-tools

endif
