"""Certificates on the controller: verify CA certificates before they reach a host, and a
small lab/testing CA (``hxinfra pki init|issue``) so TLS works without an external CA.

Everything uses the ``cryptography`` library; nothing here talks to a host.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hxinfra.errors import HxError
from hxinfra.validate import DataError, dns_name, ip_address
from hxinfra.validate import name as validate_name

WARN_DAYS = 30


class PkiError(HxError):
    """A certificate that must not be trusted or used, or a CA that cannot issue."""


def normalize_fingerprint(pin: str) -> str:
    """``SHA256:AA:bb:...``, ``aabb...`` in any case -> 64 lower-case hex digits."""
    text = pin.strip()
    if text.upper().startswith("SHA256:"):
        text = text[7:]
    text = text.replace(":", "").replace(" ", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise PkiError(f"fingerprint pin {pin!r} is not a SHA-256 fingerprint (64 hex digits, colons optional)")
    return text


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def colon_fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


@dataclass(frozen=True)
class CaInfo:
    """What the controller checked about one CA certificate."""

    name: str
    subject: str
    sha256: str
    not_after: dt.datetime
    days_left: int
    warning: str | None


def load_certificate(pem: str | bytes, source: str) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise PkiError(f"{source}: no PEM certificate in it")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise PkiError(f"{source}: not a valid PEM certificate: {e}") from e
    if len(certs) != 1:
        raise PkiError(f"{source}: holds {len(certs)} certificates; give each CA as its own entry")
    return certs[0]


def verify_ca(
    pem: str | bytes, source: str, pin: str | None = None, now: dt.datetime | None = None, warn_days: int = WARN_DAYS
) -> CaInfo:
    """Check a CA certificate before any host trusts it: a CA, pinned if asked, not expired."""
    cert = load_certificate(pem, source)
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise PkiError(
            f"{source}: not a CA certificate (basicConstraints CA:TRUE missing): {cert.subject.rfc4514_string()}"
        )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.key_cert_sign:
            raise PkiError(f"{source}: CA certificate may not sign certificates (keyUsage lacks keyCertSign)")
    except x509.ExtensionNotFound:
        pass
    actual = fingerprint(cert)
    if pin and normalize_fingerprint(pin) != actual:
        raise PkiError(
            f"{source}: SHA-256 fingerprint {colon_fingerprint(cert)} does not match the pin {pin}; "
            "refusing to trust it"
        )
    now = now or dt.datetime.now(dt.UTC)
    not_after = cert.not_valid_after_utc
    if not_after <= now:
        raise PkiError(f"{source}: CA certificate expired on {not_after:%Y-%m-%d} ({cert.subject.rfc4514_string()})")
    if cert.not_valid_before_utc > now:
        raise PkiError(f"{source}: CA certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    days = (not_after - now).days
    warning = f"{source}: CA certificate expires in {days} days ({not_after:%Y-%m-%d})" if days < warn_days else None
    return CaInfo(source, cert.subject.rfc4514_string(), actual, not_after, days, warning)


def verify_key_pair(cert_pem: str, key_pem: str, source: str) -> None:
    """The key belongs to the certificate (checked before either reaches a host)."""
    cert = load_certificate(cert_pem, source)
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{source}: private key is not an unencrypted PEM key") from e
    pub = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if (
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        != pub
    ):
        raise PkiError(f"{source}: private key does not match the certificate")


# ------------------------------------------------------------------------------ a lab CA
def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class LocalCA:
    """A CA kept in a directory: ``ca.crt``, ``private/ca.key`` (0600), ``issued/<name>.{crt,key}``."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.cert_path = self.dir / "ca.crt"
        self.key_path = self.dir / "private" / "ca.key"

    @property
    def exists(self) -> bool:
        return self.cert_path.is_file() and self.key_path.is_file()

    def init(self, common_name: str, days: int = 3650, force: bool = False) -> x509.Certificate:
        if self.exists and not force:
            raise PkiError(f"{self.dir}: a CA already exists (use --force to replace it)")
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HX"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(
            self.key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists:
            raise PkiError(f"{self.dir}: no CA here (run 'hxinfra pki init' first)")
        cert = load_certificate(self.cert_path.read_bytes(), str(self.cert_path))
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.key_path}: expected an EC key")
        return cert, key

    def paths(self, name: str) -> tuple[Path, Path]:
        try:  # a plain name: "../x" must not write outside the CA directory
            validate_name(name, "certificate name")
        except DataError as e:
            raise PkiError(str(e)) from None
        return self.dir / "issued" / f"{name}.crt", self.dir / "issued" / f"{name}.key"

    def issue(self, name: str, dns_names: Sequence[str], ips: Sequence[str] = (), days: int = 397) -> tuple[Path, Path]:
        """A server certificate (serverAuth) for ``dns_names``/``ips``, signed by this CA."""
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.paths(name)
        try:
            sans: list[x509.GeneralName] = [x509.DNSName(dns_name(d, "--dns", wildcard=True)) for d in dns_names]
            sans += [x509.IPAddress(ipaddress.ip_address(ip_address(i, "--ip"))) for i in ips]
        except DataError as e:
            raise PkiError(str(e)) from None
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        crt_path, key_path = self.paths(name)
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return crt_path, key_path

    def ensure_issued(
        self, name: str, dns_names: Sequence[str], ips: Sequence[str] = (), min_days: int = 30
    ) -> tuple[Path, Path]:
        """Issue only when missing, expiring, for other names, or from an older CA (idempotent)."""
        crt_path, key_path = self.paths(name)
        if crt_path.is_file() and key_path.is_file():
            cert = load_certificate(crt_path.read_bytes(), str(crt_path))
            ca_cert, _ = self._load()
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = set(san.get_values_for_type(x509.DNSName)) | {
                str(i) for i in san.get_values_for_type(x509.IPAddress)
            }
            fresh = cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=min_days)
            if cert.issuer == ca_cert.subject and fresh and have == set(dns_names) | set(ips):
                try:
                    cert.verify_directly_issued_by(ca_cert)
                    return crt_path, key_path
                except (ValueError, TypeError):  # noqa: S110 - not signed by this CA: re-issue below
                    pass
        return self.issue(name, dns_names, list(ips))


def days_left(cert: x509.Certificate) -> int:
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days


def issuing_ca(cert_file: Path) -> LocalCA | None:
    """The CA directory a certificate file was issued into (``<ca>/issued/<name>.crt`` beside
    ``<ca>/private/ca.key``), or None (a certificate from elsewhere: the vault, another CA)."""
    ca = LocalCA(cert_file.parent.parent)
    return ca if cert_file.parent.name == "issued" and ca.exists else None


def renew(ca: LocalCA, name: str, days: int = 397) -> x509.Certificate:
    """Issue ``name`` again with the same names and addresses (a new key), valid ``days``."""
    crt_path, _ = ca.paths(name)
    old = load_certificate(crt_path.read_bytes(), str(crt_path))
    san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = list(san.get_values_for_type(x509.DNSName))
    ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    ca.issue(name, names, ips, days=days)
    return load_certificate(crt_path.read_bytes(), str(crt_path))
