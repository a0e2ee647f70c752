"""The Ansible Vault file format, read and written byte for byte as ``ansible-vault`` does.

Format (``$ANSIBLE_VAULT;1.1;AES256`` or ``$ANSIBLE_VAULT;1.2;AES256;<vault id>``): PBKDF2-HMAC-
SHA256 (10,000 iterations) of the password and a 32-byte salt gives 80 bytes: AES-256 key,
HMAC-SHA256 key, CTR nonce. The PKCS#7-padded plaintext is AES-256-CTR encrypted, the HMAC is
taken over the ciphertext, and ``hex(hex(salt) \\n hex(hmac) \\n hex(ciphertext))`` is wrapped at
80 columns under the header. All primitives come from ``cryptography``.
"""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from hxinfra.errors import HxError

HEADER = "$ANSIBLE_VAULT"


CIPHER = "AES256"


DEFAULT_ID = "default"


ITERATIONS = 10_000


class VaultError(HxError):
    """Bad vault input: wrong password, damaged file, unknown format, no password source."""


# ------------------------------------------------------------------------------ format
@dataclass(frozen=True)
class Envelope:
    """The parsed header and (still hex-encoded) body of one vault text."""

    version: str
    cipher: str
    vault_id: str
    body: bytes


def is_encrypted(data: str | bytes) -> bool:
    if isinstance(data, bytes):
        return data.lstrip()[: len(HEADER)] == HEADER.encode()
    return data.lstrip()[: len(HEADER)] == HEADER


def parse_envelope(text: str | bytes, source: str = "<string>") -> Envelope:
    """Split a vault text into header fields and body; any damage is a :class:`VaultError`."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    lines = [line.strip() for line in raw.strip().splitlines()]
    if not lines or not lines[0].startswith(HEADER + ";"):
        raise VaultError(f"{source}: not an Ansible Vault text (no {HEADER} header)")
    parts = lines[0].split(";")
    version = parts[1] if len(parts) > 1 else ""
    cipher = parts[2] if len(parts) > 2 else ""
    if version not in ("1.1", "1.2"):
        raise VaultError(f"{source}: unsupported vault format version {version!r} (hxinfra reads 1.1 and 1.2)")
    if cipher != CIPHER:
        raise VaultError(f"{source}: unsupported vault cipher {cipher!r} (only {CIPHER})")
    vault_id = parts[3] if version == "1.2" and len(parts) > 3 and parts[3] else DEFAULT_ID
    body = "".join(lines[1:]).encode("ascii", "replace")
    if not body:
        raise VaultError(f"{source}: vault text has a header but no encrypted body (truncated?)")
    return Envelope(version, cipher, vault_id, body)


def _derive(password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=ITERATIONS).derive(password)
    return key[:32], key[32:64], key[64:80]


def encrypt(plaintext: bytes, password: bytes, vault_id: str = DEFAULT_ID, salt: bytes | None = None) -> str:
    """Encrypt to a vault text (1.1 for the ``default`` id, 1.2 with a label otherwise)."""
    if not password:
        raise VaultError("refusing to encrypt with an empty vault password")
    salt = os.urandom(32) if salt is None else salt
    aes_key, hmac_key, nonce = _derive(password, salt)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CTR(nonce)).encryptor()
    ciphertext = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    mac = HMAC(hmac_key, hashes.SHA256())
    mac.update(ciphertext)
    inner = b"\n".join([binascii.hexlify(salt), binascii.hexlify(mac.finalize()), binascii.hexlify(ciphertext)])
    body = binascii.hexlify(inner).decode("ascii")
    labelled = vault_id and vault_id != DEFAULT_ID
    header = f"{HEADER};1.2;{CIPHER};{vault_id}" if labelled else f"{HEADER};1.1;{CIPHER}"
    return "\n".join([header, *(body[i : i + 80] for i in range(0, len(body), 80))]) + "\n"


class _WrongPassword(Exception):
    pass


def _decrypt_body(envelope: Envelope, password: bytes, source: str) -> bytes:
    try:
        inner = binascii.unhexlify(envelope.body)
        salt_hex, mac_hex, cipher_hex = inner.split(b"\n", 2)
        salt, mac, ciphertext = (binascii.unhexlify(x) for x in (salt_hex, mac_hex, cipher_hex))
    except (binascii.Error, ValueError) as e:
        raise VaultError(f"{source}: vault body is damaged or truncated (not valid vault hex)") from e
    aes_key, hmac_key, nonce = _derive(password, salt)
    check = HMAC(hmac_key, hashes.SHA256())
    check.update(ciphertext)
    try:
        check.verify(mac)
    except InvalidSignature:
        raise _WrongPassword from None
    decryptor = Cipher(algorithms.AES(aes_key), modes.CTR(nonce)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    except ValueError as e:  # HMAC passed but the padding is wrong: not something ansible-vault wrote
        raise VaultError(f"{source}: vault plaintext has invalid padding (damaged file)") from e


def vault_block(vaulttext: str, indent: int = 10) -> str:
    """``!vault |`` and the vault text indented, as ``ansible-vault encrypt_string`` prints it."""
    pad = " " * indent
    return "!vault |\n" + "".join(f"{pad}{line}\n" for line in vaulttext.splitlines())
