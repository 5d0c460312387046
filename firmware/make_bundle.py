#!/usr/bin/env python3
"""Build and sign a RAUC update bundle of the box's root file system.

    python3 firmware/make_bundle.py --rootfs build/image/rootfs --out build/firmware

The root file system is a directory tree (made into an ext4 image here), an
ext4 image, or a squashfs image. The bundle is signed with the release key
given by ``--key``/``--cert`` (``BUNDLE_KEY``/``BUNDLE_CERT`` in make), or else
with a development key made on first use in ``--keys-dir`` (outside the
repository: a signing key is never committed). The device trusts the CA
certificate of that pair: its ``/etc/rauc/keyring.pem``.

Standard library only: it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

COMPATIBLE: Final = "practice-box-rpi5"
DEFAULT_KEYS_DIR: Final = Path.home() / ".cache" / "appliance" / "firmware-keys"
_REPO: Final = Path(__file__).resolve().parents[1]
_TOOLS: Final = {"rauc": "rauc", "mkfs.ext4": "e2fsprogs", "openssl": "openssl", "mksquashfs": "squashfs-tools"}
_VERSION_RE: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}$")  # the box uses it as a file name
_EXT4_MAGIC_AT: Final = 1080  # superblock at 1024, s_magic at +56
_HEADROOM: Final = 1.25  # ext4 metadata and a little room; the slot is read-only anyway
_MIN_IMAGE_MB: Final = 8  # below this, mkfs.ext4 and squashfs overheads dominate
_CERT_DAYS: Final = 3650  # a development key; a release key's lifetime is the release process's choice


class BundleError(Exception):
    """A sentence for the person running make; no traceback."""


@dataclass(frozen=True, kw_only=True)
class Signer:
    key: Path
    cert: Path
    keyring: Path | None
    """The CA the device will check against; the bundle is verified with it right after signing."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        started = time.monotonic()
        bundle = build(args)
        took = time.monotonic() - started
    except BundleError as err:
        print(f"make bundle: {err}", file=sys.stderr)
        return 2
    print(f"bundle: {bundle} ({bundle.stat().st_size / 1e6:.1f} MB, {took:.1f} s)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Build and sign a RAUC bundle of the box's root file system.")
    parser.add_argument("--rootfs", type=Path, required=True, help="directory tree, ext4 image or squashfs image")
    parser.add_argument("--out", type=Path, required=True, help="directory for the bundle")
    parser.add_argument("--version", default="", help="bundle version (default: the project's version + UTC time)")
    parser.add_argument("--compatible", default=COMPATIBLE)
    parser.add_argument("--format", choices=("verity", "plain"), default="verity")
    parser.add_argument("--keys-dir", type=Path, default=DEFAULT_KEYS_DIR, help="development keys, made if missing")
    parser.add_argument("--key", type=Path, help="release signing key (PEM or PKCS#11 URL); with --cert")
    parser.add_argument("--cert", type=Path, help="release signing certificate; with --key")
    parser.add_argument("--keyring", type=Path, help="CA to verify the new bundle against (release keys)")
    return parser


def build(args: argparse.Namespace) -> Path:
    _require_tools()
    if not args.rootfs.exists():
        raise BundleError(
            f"no root file system at {args.rootfs}. Build one with `make image` (it writes build/image/rootfs),"
            " or give one: make bundle ROOTFS=<directory | ext4 image | squashfs image>"
        )
    version = args.version or _default_version()
    if not _VERSION_RE.match(version):
        raise BundleError(f"version {version!r}: use letters, digits and . _ + ~ - only (at most 64)")
    if not re.fullmatch(r"[0-9A-Za-z._-]+", args.compatible):
        raise BundleError(f"compatible {args.compatible!r}: use letters, digits and . _ - only")
    signer = _signer(args)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = args.out / f"{args.compatible}-{version}.raucb"
    with tempfile.TemporaryDirectory(prefix="bundle-", dir=args.out) as work:
        content = Path(work) / "content"
        content.mkdir()
        image = _root_image(args.rootfs, content)
        # rauc rewrites the manifest it is given (adds hashes, drops [bundle]):
        # it is written fresh for every build, never kept in the repository.
        (content / "manifest.raucm").write_text(
            _manifest(args.compatible, version, args.format, image.name), encoding="utf-8"
        )
        bundle.unlink(missing_ok=True)  # rauc refuses to overwrite
        command = ["rauc", "bundle", f"--cert={signer.cert}", f"--key={signer.key}"]
        if signer.keyring is not None:
            command.append(f"--signing-keyring={signer.keyring}")
        _run(command + [str(content), str(bundle)], "rauc bundle")
    if signer.keyring is not None:
        print(f"device keyring: {signer.keyring}")
    return bundle


def _manifest(compatible: str, version: str, fmt: str, image_name: str) -> str:
    built = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"[update]\ncompatible={compatible}\nversion={version}\nbuild={built}\n\n"
        f"[bundle]\nformat={fmt}\n\n"
        f"[image.rootfs]\nfilename={image_name}\n"
    )


def _default_version() -> str:
    project = tomllib.loads((_REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    return f"{project}+{datetime.now(timezone.utc).strftime('%Y%m%d%H%M')}"


def _require_tools() -> None:
    missing = sorted({package for tool, package in _TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise BundleError(
            f"missing {', '.join(missing)}: run `make firmware-tools` (or apt-get install {' '.join(missing)})"
        )


# -- the root file system image ----------------------------------------------------------


def _root_image(rootfs: Path, content: Path) -> Path:
    if rootfs.is_dir():
        image = content / "rootfs.ext4"
        _ext4_from_tree(rootfs, image)
        return image
    kind = _image_kind(rootfs)
    if kind is None:
        raise BundleError(f"{rootfs} is neither a directory, an ext4 image nor a squashfs image")
    image = content / f"rootfs.{kind}"
    shutil.copyfile(rootfs, image)
    return image


def _image_kind(path: Path) -> str | None:
    with open(path, "rb") as image:
        head = image.read(_EXT4_MAGIC_AT + 2)
    if head[:4] == b"hsqs":
        return "squashfs"
    if head[_EXT4_MAGIC_AT:_EXT4_MAGIC_AT + 2] == b"\x53\xef":
        return "ext4"
    return None


def _ext4_from_tree(tree: Path, image: Path) -> None:
    total, count = 0, 0
    for folder, dirs, files in os.walk(tree):
        for name in dirs + files:
            total += os.lstat(os.path.join(folder, name)).st_size
            count += 1
    size_mb = max(_MIN_IMAGE_MB, int(total * _HEADROOM / 2**20) + 16)
    inodes = count + count // 2 + 1024
    # -m 0: a read-only root needs no blocks kept for root; -N: a tree of many small
    # files (a Debian root) runs out of inodes at the default ratio before blocks.
    _run(
        ["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-m", "0", "-N", str(inodes), "-d", str(tree),
         str(image), f"{size_mb}M"],
        "mkfs.ext4",
    )


# -- keys --------------------------------------------------------------------------------


def _signer(args: argparse.Namespace) -> Signer:
    if (args.key is None) != (args.cert is None):
        raise BundleError("give both BUNDLE_KEY and BUNDLE_CERT (the release key and its certificate), or neither")
    if args.key is not None:
        for path in (args.key, args.cert, args.keyring):
            if path is not None and not str(path).startswith("pkcs11:") and not Path(path).is_file():
                raise BundleError(f"{path}: no such file")
        return Signer(key=args.key, cert=args.cert, keyring=args.keyring)
    return development_keys(args.keys_dir)


def development_keys(folder: Path) -> Signer:
    """A CA and a signing key under it, made once in ``folder`` (mode 0700)."""
    ca_key, ca_cert = folder / "ca.key.pem", folder / "ca.cert.pem"
    key, cert = folder / "signing.key.pem", folder / "signing.cert.pem"
    if all(p.is_file() for p in (ca_key, ca_cert, key, cert)):
        return Signer(key=key, cert=cert, keyring=ca_cert)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    print(f"making development signing keys in {folder} (not for release)")
    with tempfile.TemporaryDirectory(dir=folder) as work:
        ext = Path(work) / "ext.cnf"
        ext.write_text(
            "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n"
            "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\n"
            "[signer]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
            encoding="ascii",
        )
        csr = Path(work) / "signing.csr"
        # P-256: small and fast; RAUC's CMS signatures take EC keys as well as RSA.
        for target in (ca_key, key):
            _run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", str(target)], "openssl genpkey")
            target.chmod(0o600)
        _run(["openssl", "req", "-new", "-x509", "-key", str(ca_key), "-out", str(ca_cert),
              "-days", str(_CERT_DAYS), "-subj", "/O=Practice Box/CN=practice-box development CA",
              "-config", str(ext), "-extensions", "ca"], "openssl req (CA)")
        _run(["openssl", "req", "-new", "-key", str(key), "-out", str(csr),
              "-subj", "/O=Practice Box/CN=practice-box development signing", "-config", str(ext)],
             "openssl req (signing)")
        _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
              "-CAcreateserial", "-out", str(cert), "-days", str(_CERT_DAYS),
              "-extfile", str(ext), "-extensions", "signer"], "openssl x509")
        Path(str(ca_cert.with_suffix("")) + ".srl").unlink(missing_ok=True)
    return Signer(key=key, cert=cert, keyring=ca_cert)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise BundleError(f"{what} failed: {detail[-1] if detail else f'exit status {done.returncode}'}")


if __name__ == "__main__":
    sys.exit(main())
