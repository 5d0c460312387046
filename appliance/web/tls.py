"""The web page's HTTPS certificate: self-signed, made once at first start.

A box on a practice network has no public name, so no public authority can sign
for it. It makes its own P-256 certificate for ``<hostname>.local`` (announced by
avahi's mDNS), ``localhost`` and ``127.0.0.1``, and prints the certificate's
SHA-256 fingerprint on the console, so whoever sets it up can compare it with
what the browser shows before trusting it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.clock import Clock, SystemClock

_VALID_DAYS: Final = 825  # the longest validity browsers accept for a server certificate
CERT_NAME: Final = "tls.crt"
KEY_NAME: Final = "tls.key"


@dataclass(frozen=True, kw_only=True)
class Certificate:
    cert_path: Path
    key_path: Path
    fingerprint: str
    """SHA-256 of the DER certificate, ``AB:CD:...`` as browsers show it."""
    created: bool
    """Made just now (first start): worth printing prominently."""


def ensure_certificate(cert_dir: Path, *, hostname: str | None = None, clock: Clock | None = None) -> Certificate:
    """The certificate in ``cert_dir``, made first if there is none."""
    cert_path, key_path = cert_dir / CERT_NAME, cert_dir / KEY_NAME
    created = False
    if not (cert_path.exists() and key_path.exists()):
        _make(cert_path, key_path, hostname or socket.gethostname(), (clock or SystemClock()).now())
        created = True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return Certificate(cert_path=cert_path, key_path=key_path, fingerprint=fingerprint(cert), created=created)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _make(cert_path: Path, key_path: Path, hostname: str, now: dt.datetime) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    short = hostname.split(".")[0] or "appliance"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{short}.local")])
    start = now.astimezone(dt.timezone.utc) - dt.timedelta(days=1)  # a box clock slightly behind still accepts it
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=_VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(f"{short}.local"),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by the box's user only, from the first byte on."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover temporary file keeps its old mode otherwise
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
