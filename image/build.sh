#!/bin/bash
# Builds the box's OS image: a Debian bookworm arm64 root file system, the
# appliance in /opt/practice-box, a read-only root with a /data partition, and a
# GPT disk image made by genimage in the Raspberry Pi tryboot A/B layout
# (autoboot, boot_a, boot_b, rootfs_a, rootfs_b, data) with the RAUC updater.
#
#   image/build.sh            everything (what `make image` runs)
#   image/build.sh tools      only the host packages and binfmt
#   image/build.sh base       up to the cached base system (Debian + the venv's dependencies)
#
# Runs on an x86-64 Debian 12 host as root: the arm64 programs run under
# qemu-user-static through binfmt_misc, so no arm64 machine is needed.
# Slow stages are cached outside the repository (IMAGE_CACHE), keyed by what
# went into them, so a second build only redoes the appliance layer.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE_DIR=$REPO/image
OUT=${IMAGE_OUT:-$REPO/build/image}
CACHE=${IMAGE_CACHE:-$HOME/.cache/appliance/image}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
HOST_PY=${PY:-$REPO/.venv/bin/python}
HOST_VENV_PREFIX=$("$HOST_PY" -c 'import sys; print(sys.prefix)')
WITH_LLAMA=${IMAGE_WITH_LLAMA:-0}
WITH_KERNEL=${IMAGE_WITH_KERNEL:-1}
HOSTNAME_=${IMAGE_HOSTNAME:-secretariat}
# Partition sizes; README.md, "Partition layout", says why each is what it is.
AUTOBOOT_SIZE=${IMAGE_AUTOBOOT_SIZE:-16M}
BOOT_SIZE=${IMAGE_BOOT_SIZE:-256M}
ROOT_SIZE=${IMAGE_ROOT_SIZE:-2G}
DATA_SIZE=${IMAGE_DATA_SIZE:-512M}
# The CA whose signatures the box's RAUC accepts (/etc/rauc/keyring.pem). A release
# build passes the release CA; otherwise the development CA `make bundle` signs
# with, made on first use, so that the image and the bundles share one CA.
BUNDLE_KEYRING=${BUNDLE_KEYRING:-}
FIRMWARE_KEYS_DIR=${FIRMWARE_KEYS_DIR:-$HOME/.cache/appliance/firmware-keys}
# The updater's own packages. Installed in the (uncached) rootfs stage, not in
# PACKAGES: adding them there would rebuild the 40-minute base stage.
UPDATER_PACKAGES=(rauc rauc-service)

# Debian packages of the root file system. python3-systemd and python3-pyaudio
# come from Debian rather than PyPI: both are C extensions with no aarch64
# wheel, and compiling them under emulation would need a compiler in the image.
PACKAGES=(
  python3 python3-venv python3-systemd python3-pyaudio libportaudio2
  systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus kmod iproute2
  avahi-daemon libnss-mdns sqlite3 espeak-ng ca-certificates libstdc++6 libgomp1
)
if [ "$WITH_KERNEL" = 1 ]; then
  # Debian's own Raspberry Pi boot files (non-free-firmware) and arm64 kernel.
  PACKAGES+=(linux-image-arm64 raspi-firmware initramfs-tools)
fi
if [ "$WITH_LLAMA" = 1 ]; then
  # llama-cpp-python has no wheel for any platform: it compiles in the image.
  PACKAGES+=(build-essential cmake ninja-build)
fi

log() { printf '==> %s\n' "$*"; }
# The host's pip may name index folders that do not exist on this machine: its
# warnings about them are noise here, anything else it says is kept.
host_pip() {
  "$HOST_PY" -m pip --disable-pip-version-check "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}
die() { printf 'image: %s\n' "$*" >&2; exit 1; }

# nspawn as a plain chroot with /proc, /sys, /dev set up and torn down for us;
# both flags are needed on a host without systemd as PID 1 (no machined, no D-Bus).
in_root() {
  local root=$1; shift
  systemd-nspawn --register=no --keep-unit -q -D "$root" \
    --setenv=DEBIAN_FRONTEND=noninteractive --setenv=LC_ALL=C.UTF-8 "$@" \
    2> >(grep -v 'Attempted to remove disk file system under' >&2)  # harmless at exit (reference C.2)
}

stage_tools() {
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mkfs need it)"
  local need=(debootstrap qemu-user-static binfmt-support systemd-container genimage
              dosfstools mtools e2fsprogs fdisk openssl)
  local missing=()
  for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Not mounted by default on a container host; without it no arm64 binary runs.
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || die "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"
}

# Stage 1: the minimal Debian system (about 4 min under emulation), cached.
stage_debootstrap() {
  local dir=$CACHE/debootstrap-$SUITE-arm64
  if [ -f "$dir.done" ]; then log "debootstrap: cached in $dir"; return; fi
  rm -rf "$dir"; mkdir -p "$CACHE"
  log "debootstrap $SUITE arm64, first stage"
  debootstrap --foreign --arch=arm64 --variant=minbase \
    --components=main,non-free-firmware "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed, see $CACHE/debootstrap.log"
  log "debootstrap second stage (under qemu-user)"
  chroot "$dir" /debootstrap/debootstrap --second-stage >>"$CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap second stage failed, see $CACHE/debootstrap.log"
  touch "$dir.done"
}

# The appliance's Python dependencies for the image: pyproject's list, less what
# Debian provides and (unless asked) llama-cpp-python.
requirements() {
  "$HOST_PY" "$IMAGE_DIR/requirements.py" --pyproject "$REPO/pyproject.toml" \
    $([ "$WITH_LLAMA" = 1 ] && echo --with-llama)
}

# Stage 2: Debian packages and the venv's dependencies, cached by their list.
stage_base() {
  local reqs key dir
  reqs=$(requirements)
  key=$( (printf '%s\n' "${PACKAGES[@]}"; echo "$reqs"; echo "$MIRROR") | sha256sum | cut -c1-12)
  dir=$CACHE/base-$key
  BASE=$dir
  if [ -f "$dir.done" ]; then log "base system: cached in $dir"; return; fi
  rm -rf "$dir"
  log "base system: copying the debootstrap stage"
  cp -a "$CACHE/debootstrap-$SUITE-arm64" "$dir"
  echo "deb $MIRROR $SUITE main non-free-firmware
deb $MIRROR $SUITE-updates main non-free-firmware
deb http://security.debian.org/debian-security $SUITE-security main non-free-firmware" >"$dir/etc/apt/sources.list"
  # Services must not start inside the build.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod 755 "$dir/usr/sbin/policy-rc.d"
  # raspi-firmware refuses to install unless /boot/firmware is a mount point (it
  # is the boot partition on the device); a bind of the directory onto itself.
  mkdir -p "$dir/boot/firmware"
  # Where raspi-firmware's kernel hook takes the root device for cmdline.txt:
  # slot A; stage_boot gives each boot partition its own root= (README.md, "A/B updates").
  mkdir -p "$dir/etc/default"
  printf 'ROOTPART=PARTLABEL=rootfs_a\nCONSOLES="serial0,115200 tty1"\n' >"$dir/etc/default/raspi-firmware"
  log "base system: apt-get install ${#PACKAGES[@]} packages (under emulation)"
  # The .debs are kept on the host: a rebuild of this stage downloads nothing.
  mkdir -p "$CACHE/apt-archives/partial"
  # --force-confold: keep the /etc/default/raspi-firmware written above (no prompt).
  in_root "$dir" --bind="$dir/boot/firmware:/boot/firmware" --bind="$CACHE/apt-archives:/var/cache/apt/archives" \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${PACKAGES[*]}" </dev/null \
    >"$CACHE/base.log" 2>&1 || die "apt-get in the image failed, see $CACHE/base.log"

  log "base system: aarch64 wheels of the dependencies (from PyPI, on the host)"
  local wheels=$CACHE/wheels-aarch64
  mkdir -p "$wheels"
  echo "$reqs" >"$CACHE/requirements-$key.txt"
  local platforms=(--platform manylinux2014_aarch64)
  for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
  host_pip download -q --only-binary=:all: \
    "${platforms[@]}" --python-version 3.11 --implementation cp \
    -d "$wheels" -r "$CACHE/requirements-$key.txt" \
    || die "some dependency has no aarch64 wheel for Python 3.11 (see above)"
  if [ "$WITH_LLAMA" = 1 ]; then
    host_pip download -q --no-deps --no-binary=llama-cpp-python \
      -d "$wheels" "$(grep '^llama-cpp-python' "$CACHE/requirements-$key.txt")"
  fi
  log "base system: the venv in /opt/practice-box (pip under emulation)"
  # --system-site-packages: Debian's python3-systemd and python3-pyaudio are used.
  in_root "$dir" --bind-ro="$wheels:/tmp/wheels" --bind-ro="$CACHE/requirements-$key.txt:/tmp/requirements.txt" \
    sh -c 'python3 -m venv --system-site-packages /opt/practice-box &&
           /opt/practice-box/bin/pip install -q --disable-pip-version-check --no-index \
             --find-links /tmp/wheels -r /tmp/requirements.txt' \
    >>"$CACHE/base.log" 2>&1 || die "pip in the image failed, see $CACHE/base.log"
  touch "$dir.done"
}

# The appliance itself as a wheel, built on the host from a clean copy of the
# sources (so the build leaves nothing in the checkout).
appliance_wheel() {
  local src=$OUT/src
  rm -rf "$src" "$OUT/wheel"; mkdir -p "$src" "$OUT/wheel"
  cp -a "$REPO/appliance" "$REPO/pyproject.toml" "$REPO/README.md" "$src/"
  find "$src" -name __pycache__ -prune -exec rm -rf {} +
  [ -f "$src/appliance/web/static/vendor/htmx.min.js" ] \
    || die "appliance/web/static/vendor/htmx.min.js is missing: run \`make install\` first"
  host_pip wheel -q --no-deps \
    -w "$OUT/wheel" "$src" >/dev/null || die "building the appliance wheel failed"
  rm -rf "$src"
}

# Stage 3 (every build): the appliance, its models and the system settings.
stage_rootfs() {
  local R=$OUT/rootfs
  log "root file system: fresh copy of the base in $R"
  rm -rf "$R"; mkdir -p "$OUT"
  cp -a "$BASE" "$R"

  appliance_wheel
  in_root "$R" --bind-ro="$OUT/wheel:/tmp/wheel" \
    sh -c '/opt/practice-box/bin/pip install -q --disable-pip-version-check --no-index --no-deps /tmp/wheel/*.whl' \
    || die "installing the appliance into the image failed"

  log "root file system: the updater (apt-get install ${UPDATER_PACKAGES[*]}, under emulation)"
  mkdir -p "$CACHE/apt-archives/partial"
  # The base's /etc/resolv.conf is systemd-resolved's stub, which nothing answers
  # during the build: the host's copy stands in (the stub link is put back below).
  in_root "$R" --resolv-conf=replace-host --bind="$CACHE/apt-archives:/var/cache/apt/archives" \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${UPDATER_PACKAGES[*]}" </dev/null \
    >"$OUT/updater-apt.log" 2>&1 || die "apt-get install ${UPDATER_PACKAGES[*]} failed, see $OUT/updater-apt.log"
  stage_updater "$R"

  log "root file system: models (verified on the host, copied: they are architecture-independent)"
  local models=(silero-vad whisper-base kokoro-82m)
  [ "$WITH_LLAMA" = 1 ] && models+=(gemma-3-270m)
  "$REPO/.venv/bin/appliance" models status >/dev/null \
    || die "the host's models are not ready: run \`make models\` first"
  mkdir -p "$R/opt/practice-box/share/appliance-models" "$R/usr/share/appliance/models"
  for m in "${models[@]}"; do
    cp -a "$HOST_VENV_PREFIX/share/appliance-models/$m" "$R/opt/practice-box/share/appliance-models/"
    cp "$REPO/models/$m.toml" "$R/usr/share/appliance/models/"
  done
  # The installed package finds no models/ beside it, so it looks in
  # /usr/share/appliance/models (appliance.models.catalog.default_manifest_dir).

  log "root file system: units, configuration, user, read-only root"
  cp -a --no-preserve=ownership "$IMAGE_DIR/rootfs/." "$R/"
  # The modem rule lives in hw/ (one copy in the repository); udev reads it here.
  install -D -m 0644 "$REPO/hw/udev/90-appliance-modem.rules" "$R/usr/lib/udev/rules.d/90-appliance-modem.rules"
  echo "$HOSTNAME_" >"$R/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$HOSTNAME_" >"$R/etc/hosts"
  # systemd-sysusers at boot failed under nspawn (reference C.2): the user is
  # made now, from the same sysusers.d file the device would use.
  in_root "$R" systemd-sysusers /usr/lib/sysusers.d/practice-box.conf
  in_root "$R" sh -c 'getent passwd practice-box >/dev/null' || die "the practice-box user was not created"
  in_root "$R" systemctl enable practice-box-core.service practice-box-web.service \
    practice-box-update-recover.service practice-box-update-check.service avahi-daemon.service \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service 2>&1 | grep -v '^Created symlink' || true
  # ModemManager is not installed; masked as well, so a later install stays off the modem.
  in_root "$R" systemctl mask ModemManager.service 2>&1 | grep -v '^Created symlink' || true
  # Name resolution through resolved (its mDNS is off: avahi answers for .local).
  ln -sf /run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
  # Read-only root: the machine id is made at each boot into /run until /etc is
  # writable (systemd's documented behaviour for an empty /etc/machine-id).
  : >"$R/etc/machine-id"
  rm -f "$R/var/lib/dbus/machine-id"; ln -sf /etc/machine-id "$R/var/lib/dbus/machine-id"
  # The root is mounted read-only: raspi-firmware writes "rw" into cmdline.txt and
  # appends raspi-extra-cmdline after it; the kernel takes the last of the two.
  echo ro >"$R/etc/default/raspi-extra-cmdline"
  # Slot A's root for raspi-firmware's kernel hook (the cached base may still say
  # the old label); each boot partition gets its own cmdline.txt in stage_boot.
  printf 'ROOTPART=PARTLABEL=rootfs_a\nCONSOLES="serial0,115200 tty1"\n' >"$R/etc/default/raspi-firmware"
  [ -f "$R/boot/firmware/cmdline.txt" ] && sed -i 's/ rw / ro /' "$R/boot/firmware/cmdline.txt"
  # Mount points of /data, the paths bound from it and the autoboot partition.
  mkdir -p "$R/data" "$R/var/lib/practice-box" "$R/var/log/journal" "$R/boot/autoboot"
  rm -f "$R/usr/sbin/policy-rc.d"
  rm -rf "$R/var/lib/apt/lists/"* "$R/var/cache/apt/"*.bin "$R"/tmp/* "$R/debootstrap"

  log "data partition contents"
  local D=$OUT/data uid gid
  rm -rf "$D"; mkdir -p "$D/practice-box/update" "$D/journal" "$D/systemd" "$D/rauc"
  uid=$(awk -F: '$1=="practice-box"{print $3}' "$R/etc/passwd")
  gid=$(awk -F: '$1=="practice-box"{print $4}' "$R/etc/passwd")
  chown "$uid:$gid" "$D/practice-box"; chmod 0750 "$D/practice-box"
  # update/: root copies the store here before an install; practice-box-update-recover
  # (User=practice-box) moves files in and out of it after a failed trial.
  chown "$uid:$gid" "$D/practice-box/update"; chmod 0750 "$D/practice-box/update"
  # RAUC's status file (system.conf statusfile=/data/rauc/status.raucs); RAUC runs as root.
  chmod 0700 "$D/rauc"
  # journald's directory: group systemd-journal, setgid, as journald makes it.
  chown "0:$(awk -F: '$1=="systemd-journal"{print $3}' "$R/etc/group")" "$D/journal"; chmod 2755 "$D/journal"
  cp -a "$R/var/lib/systemd/." "$D/systemd/" 2>/dev/null || true
}

# RAUC and the box's side of it (firmware/README.md, "For the image").
stage_updater() {
  local R=$1 keyring=$BUNDLE_KEYRING
  install -D -m 0644 "$REPO/firmware/rauc/system.conf" "$R/etc/rauc/system.conf"
  if [ -z "$keyring" ]; then
    # The same function `make bundle` uses: one development CA for both.
    keyring=$("$HOST_PY" -c 'import sys; from pathlib import Path
sys.path.insert(0, sys.argv[1]); from make_bundle import development_keys
print(development_keys(Path(sys.argv[2])).keyring)' "$REPO/firmware" "$FIRMWARE_KEYS_DIR") \
      || die "making the development signing CA in $FIRMWARE_KEYS_DIR failed"
    log "updater: development CA $keyring (release builds pass BUNDLE_KEYRING)"
  fi
  [ -f "$keyring" ] || die "BUNDLE_KEYRING=$keyring: no such file"
  openssl x509 -noout -in "$keyring" 2>/dev/null || die "$keyring is not a PEM certificate (BUNDLE_KEYRING)"
  install -D -m 0644 "$keyring" "$R/etc/rauc/keyring.pem"
  install -D -m 0755 "$REPO/firmware/rauc/bootloader-backend" "$R/usr/lib/practice-box/rauc-bootloader-backend"
  # One copy of the units in the repository (firmware/systemd/), vendor units here.
  install -m 0644 "$REPO/firmware/systemd/practice-box-update-check.service" \
    "$REPO/firmware/systemd/practice-box-update-recover.service" "$R/usr/lib/systemd/system/"
}

# The three FAT partitions' contents. Boot B starts as a copy of boot A with its
# own cmdline.txt: the bundle carries the root slot only, so both slots boot the
# kernel the image was built with (README.md, "A/B updates").
stage_boot() {
  local R=$OUT/rootfs
  log "boot partitions: autoboot, boot_a, boot_b"
  rm -rf "$OUT/autoboot" "$OUT/boot-a" "$OUT/boot-b"
  mkdir -p "$OUT/autoboot" "$OUT/boot-a" "$OUT/boot-b"
  # autoboot.txt as appliance.system.update writes it, slot A committed, no trial:
  # the partition numbers come from the code that reads them back on the box.
  "$HOST_PY" -c 'import sys; from appliance.system.update import Autoboot, SLOT_PARTITIONS as P
sys.stdout.write(Autoboot(committed=P["A"], tryboot=P["A"]).render())' >"$OUT/autoboot/autoboot.txt" \
    || die "writing autoboot.txt failed (is the appliance installed in $HOST_PY?)"
  local slot dir label
  for slot in A B; do
    dir=$OUT/boot-${slot,,}; label=rootfs_${slot,,}
    [ -d "$R/boot/firmware" ] && cp -a --no-preserve=ownership "$R/boot/firmware/." "$dir/"
    if [ -f "$dir/cmdline.txt" ]; then
      # One line: this slot's root, and rauc.slot= so RAUC knows which slot runs.
      sed -i -e "s/\(^\| \)root=[^ ]*/\1root=PARTLABEL=$label/" -e 's/ *rauc\.slot=[^ ]*//g' \
             -e "s/ *\$/ rauc.slot=$slot/" "$dir/cmdline.txt"
      grep -q "root=PARTLABEL=$label .*rauc.slot=$slot\$" "$dir/cmdline.txt" \
        || die "cmdline.txt of slot $slot came out wrong: $(cat "$dir/cmdline.txt")"
    fi
  done
}

stage_disk() {
  local R=$OUT/rootfs cfg=$OUT/genimage.cfg
  log "disk image (genimage)"
  sed -e "s|@AUTOBOOT_SIZE@|$AUTOBOOT_SIZE|g" -e "s|@BOOT_SIZE@|$BOOT_SIZE|g" \
      -e "s|@ROOT_SIZE@|$ROOT_SIZE|g" -e "s|@DATA_SIZE@|$DATA_SIZE|g" \
      -e "s|@AUTOBOOT_DIR@|$OUT/autoboot|g" -e "s|@BOOT_A_DIR@|$OUT/boot-a|g" -e "s|@BOOT_B_DIR@|$OUT/boot-b|g" \
      -e "s|@DATA_DIR@|$OUT/data|g" "$IMAGE_DIR/genimage.cfg.in" >"$cfg"
  rm -rf "$OUT/genimage-tmp" "$OUT/disk"; mkdir -p "$OUT/disk" "$OUT/input"
  genimage --config "$cfg" --rootpath "$R" --tmppath "$OUT/genimage-tmp" \
    --inputpath "$OUT/input" --outputpath "$OUT/disk" >"$OUT/genimage.log" 2>&1 \
    || die "genimage failed, see $OUT/genimage.log"
  rm -rf "$OUT/genimage-tmp"
  local img=$OUT/disk/practice-box.img
  log "image: $img"
  printf '    size %s (apparent), %s on disk (sparse)\n' \
    "$(du -h --apparent-size "$img" | cut -f1)" "$(du -h "$img" | cut -f1)"
  sfdisk -l "$img" | sed -n '/^Device/,$p' | sed 's/^/    /'
  printf '    root file system %s, models %s\n' "$(du -sh "$R" | cut -f1)" \
    "$(du -sh "$R/opt/practice-box/share/appliance-models" | cut -f1)"
}

main() {
  local what=${1:-all}
  stage_tools
  [ "$what" = tools ] && return
  local started=$SECONDS
  stage_debootstrap
  stage_base
  [ "$what" = base ] && return
  stage_rootfs
  stage_boot
  stage_disk
  log "image built in $((SECONDS - started)) s"
}

main "$@"; exit  # nothing after this line is ever read, even if the file is edited meanwhile
