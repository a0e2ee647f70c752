"""Ansible-Vault-compatible secrets: the file format, password sources, and secret values.

Operators bring ``group_vars/*/vault.yml`` files and ``!vault |`` strings encrypted with
``ansible-vault``; hxinfra reads and writes the same bytes, so nothing has to be re-encrypted.

Format (``$ANSIBLE_VAULT;1.1;AES256`` or ``$ANSIBLE_VAULT;1.2;AES256;<vault id>``): PBKDF2-HMAC-
SHA256 (10,000 iterations) of the password and a 32-byte salt gives 80 bytes: AES-256 key,
HMAC-SHA256 key, CTR nonce. The PKCS#7-padded plaintext is AES-256-CTR encrypted, the HMAC is
taken over the ciphertext, and ``hex(hex(salt) \\n hex(hmac) \\n hex(ciphertext))`` is wrapped at
80 columns under the header. All primitives come from ``cryptography``.

Secret values never print: a :class:`Vaulted` value (from YAML ``!vault``) stays encrypted until a
deploy asks for it, and then becomes a :class:`Secret` (a ``str`` whose ``repr`` is masked and
whose text is registered so that :func:`redact` hides it in diffs and logs).
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import getpass
import hashlib
import html
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
MASK = "********"

# how the hxinfra CLI hands its passwords to the pyinfra process it runs (an inherited pipe)
PASSWORDS_FD_ENV = "HXINFRA_VAULT_PASSWORDS_FD"
PASSWORD_FILE_ENV = "HXINFRA_VAULT_PASSWORD_FILE"  # noqa: S105 - a variable name
VAULT_IDS_ENV = "HXINFRA_VAULT_ID"
PROJECT_PASSWORD_FILE = ".vault_pass"  # noqa: S105 - a file name


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


# ------------------------------------------------------------------------------ passwords
def _check_private(path: Path, executable: bool) -> None:
    mode = path.stat().st_mode
    if executable and mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise VaultError(f"vault password script {path} is writable by group or others; chmod go-w {path}")
    if not executable and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(
            f"vault password file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"chmod 600 {path}"
        )


def read_password_file(path: str | Path, vault_id: str = DEFAULT_ID) -> bytes:
    """A password from a file, or from the stdout of an executable file (as Ansible does).

    A script whose name ends in ``-client`` is given ``--vault-id <id>``, like Ansible's
    vault client scripts.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise VaultError(f"vault password file {p} does not exist")
    executable = os.access(p, os.X_OK)
    _check_private(p, executable)
    if executable:
        argv = [str(p.resolve())]
        if p.stem.endswith("-client"):
            argv += ["--vault-id", vault_id]
        try:
            r = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise VaultError(f"vault password script {p} could not run: {e}") from e
        if r.returncode != 0:
            raise VaultError(f"vault password script {p} failed (exit {r.returncode})")
        password = r.stdout.strip()
    else:
        password = p.read_bytes().strip()
    if not password:
        raise VaultError(f"vault password file {p} is empty")
    return password


def prompt_password(vault_id: str = DEFAULT_ID, confirm: bool = False) -> bytes:
    """Ask on the terminal (never echoed); an error when there is no terminal."""
    if not sys.stdin.isatty():
        raise VaultError(
            "a vault password is needed but none was given and there is no terminal to ask: "
            f"use --vault-password-file, {PASSWORD_FILE_ENV} or {PROJECT_PASSWORD_FILE} in the project root"
        )
    label = "" if vault_id == DEFAULT_ID else f" ({vault_id})"
    first = getpass.getpass(f"Vault password{label}: ")
    if confirm and getpass.getpass(f"Confirm vault password{label}: ") != first:
        raise VaultError("vault passwords do not match")
    if not first:
        raise VaultError("empty vault password")
    return first.encode()


@dataclass(frozen=True)
class PasswordSource:
    """``label@source``: a file/script path, or ``prompt``."""

    vault_id: str
    source: str

    @classmethod
    def parse(cls, spec: str) -> PasswordSource:
        label, sep, source = spec.partition("@")
        if not sep:  # plain "path" or "prompt", as --vault-id allows
            return cls(DEFAULT_ID, spec)
        if not label or not source:
            raise VaultError(f"--vault-id {spec!r} is not label@source")
        return cls(label, source)

    def load(self, confirm: bool = False) -> bytes:
        if self.source == "prompt":
            return prompt_password(self.vault_id, confirm=confirm)
        return read_password_file(self.source, self.vault_id)


class NoPassword(VaultError):
    """No password for a vault text's id could be had (none given, a missing file, no terminal).

    Unlike a wrong password, this lets the inventory keep a vault file it cannot open *sealed*:
    its values are masked placeholders until a deploy needs them.
    """


class Keyring:
    """The vault passwords of one run, by vault id; each source is read only when a value needs it.

    A vault text tries the passwords whose id matches its header first, then the others (as
    Ansible does). A source that cannot be read (a missing file, no terminal to prompt) only
    matters when no other password opens the text: a missing password for a vault id the run
    never uses does not stop it.
    """

    def __init__(
        self,
        secrets: Sequence[tuple[str, bytes]] = (),
        resolver: Callable[[], list[tuple[str, bytes]]] | None = None,
        description: str = "",
        sources: Sequence[tuple[str, Callable[[], bytes], str]] = (),
    ) -> None:
        # (vault id, loader, description); a loaded password or the error loading it, by index
        self._sources: list[tuple[str, Callable[[], bytes], str]] = [
            (label, (lambda pw=pw: pw), "given") for label, pw in secrets
        ] + list(sources)
        self._loaded: dict[int, bytes | VaultError] = dict(enumerate(pw for _label, pw in secrets))
        self._resolver = resolver
        self._resolved_all: list[tuple[str, bytes]] | None = None
        self.description = description
        self._known: list[tuple[str, bytes]] = []  # added by code (the lab's own vault), never prompted for

    @property
    def resolved(self) -> bool:
        return (
            bool(self._known)
            or self._resolved_all is not None
            or any(isinstance(v, bytes) for v in self._loaded.values())
        )

    def add(self, vault_id: str, password: bytes) -> None:
        """A password the program already knows (e.g. the lab's generated one); tried first."""
        if (vault_id, password) not in self._known:
            self._known.append((vault_id, password))

    def _load(self, index: int) -> bytes | VaultError:
        if index not in self._loaded:
            try:
                self._loaded[index] = self._sources[index][1]()
            except VaultError as e:
                self._loaded[index] = e
        return self._loaded[index]

    def _resolve_all(self) -> list[tuple[str, bytes]]:
        if self._resolver is not None:
            if self._resolved_all is None:
                self._resolved_all = self._resolver()
            return self._resolved_all
        return []

    def unattended(self) -> Keyring:
        """These passwords less any a person would be asked for (redacting a report must not prompt)."""
        sources = [s for s in self._sources if s[2] != "prompt"]
        return Keyring(secrets=self.known(), resolver=self._resolver, sources=sources)

    def known(self) -> list[tuple[str, bytes]]:
        """What can be handed on without asking anyone: added and already-read passwords."""
        read = [(self._sources[i][0], v) for i, v in sorted(self._loaded.items()) if isinstance(v, bytes)]
        return self._known + read + (self._resolved_all or [])

    def secrets(self) -> list[tuple[str, bytes]]:
        """Every password of every source (reading them all; the first that fails is an error)."""
        out = list(self._resolve_all())
        for i in range(len(self._sources)):
            value = self._load(i)
            if isinstance(value, VaultError):
                raise value
            out.append((self._sources[i][0], value))
        return out

    def ids(self) -> list[str]:
        return [label for label, _ in self.secrets()]

    def decrypt(self, text: str | bytes, source: str = "<string>") -> bytes:
        """Try the password whose id matches the header first, then every other one (as Ansible)."""
        return self.open(text, source)[0]

    def _candidates(self, vault_id: str) -> Iterator[tuple[str, bytes]]:
        yield from sorted(self._known, key=lambda s: s[0] != vault_id)
        yield from sorted(self._resolve_all(), key=lambda s: s[0] != vault_id)
        order = sorted(range(len(self._sources)), key=lambda i: self._sources[i][0] != vault_id)
        for i in order:
            value = self._load(i)
            if isinstance(value, bytes):
                yield self._sources[i][0], value

    def open(self, text: str | bytes, source: str = "<string>") -> tuple[bytes, str, bytes]:
        """Decrypt and also say which vault id (of the header) and password opened it."""
        envelope = parse_envelope(text, source)
        tried: list[str] = []
        for label, password in self._candidates(envelope.vault_id):
            try:
                return _decrypt_body(envelope, password, source), envelope.vault_id, password
            except _WrongPassword:
                tried.append(label)
        problems = [str(v) for v in self._loaded.values() if isinstance(v, VaultError)]
        why = f" ({'; '.join(problems)})" if problems else ""
        if not tried or (envelope.vault_id != DEFAULT_ID and envelope.vault_id not in tried):
            raise NoPassword(
                f"{source}: encrypted with vault id {envelope.vault_id!r}, but no vault password was given for it{why}"
            )
        ids = ", ".join(sorted(set(tried)))
        raise VaultError(
            f"{source}: wrong vault password for vault id {envelope.vault_id!r} "
            f"(tried vault id(s): {ids}; HMAC did not match){why}"
        )

    def encrypt(self, plaintext: bytes, vault_id: str | None = None) -> str:
        label, password = self.secret_for(vault_id)
        return encrypt(plaintext, password, label)

    def secret_for(self, vault_id: str | None) -> tuple[str, bytes]:
        secrets = self.secrets()
        if vault_id is not None:
            for label, password in secrets:
                if label == vault_id:
                    return label, password
            raise VaultError(f"no vault password for vault id {vault_id!r} (have: {', '.join(self.ids()) or 'none'})")
        if len(secrets) != 1:
            raise VaultError(
                f"{len(secrets)} vault ids given ({', '.join(self.ids())}); choose one with --encrypt-vault-id"
            )
        return secrets[0]

    def to_pipe(self) -> int:
        """Write the passwords to a new pipe and return its read end (for a child process).

        A thread writes, so a payload larger than the pipe buffer (a binary key file) never blocks.
        """
        payload = json.dumps([[label, pw.decode("latin-1")] for label, pw in self.known()]).encode()
        read_fd, write_fd = os.pipe()

        def write() -> None:
            with os.fdopen(write_fd, "wb") as f, contextlib.suppress(BrokenPipeError):
                f.write(payload)

        threading.Thread(target=write, daemon=True).start()
        return read_fd


def _read_pipe(fd: int) -> list[tuple[str, bytes]]:
    with os.fdopen(fd, "rb") as f:
        items = json.loads(f.read() or b"[]")
    return [(str(label), str(pw).encode("latin-1")) for label, pw in items]


def keyring_from_sources(
    vault_ids: Sequence[str] = (),
    password_files: Sequence[str] = (),
    ask: bool = False,
    project: Path | None = None,
    confirm: bool = False,
) -> Keyring:
    """Passwords in the documented order.

    Explicit sources (``--vault-id``, ``--vault-password-file``, ``--ask-vault-pass``) are all
    used; without any: ``HXINFRA_VAULT_PASSWORD_FILE``, then ``.vault_pass`` in the project
    root, then a terminal prompt, the first that exists. Nothing is read until a value needs it.
    """
    sources = [PasswordSource.parse(v) for v in vault_ids]
    sources += [PasswordSource(DEFAULT_ID, f) for f in password_files]
    if ask:
        sources.append(PasswordSource(DEFAULT_ID, "prompt"))
    env_file = os.environ.get(PASSWORD_FILE_ENV)
    project_file = project / PROJECT_PASSWORD_FILE if project is not None else None
    if not sources:
        if env_file:
            sources = [PasswordSource(DEFAULT_ID, env_file)]
        elif project_file is not None and project_file.exists():
            sources = [PasswordSource(DEFAULT_ID, str(project_file))]
        else:
            sources = [PasswordSource(DEFAULT_ID, "prompt")]

    loaders = [(s.vault_id, functools.partial(s.load, confirm=confirm), s.source) for s in sources]
    return Keyring(sources=loaders, description=", ".join(f"{s.vault_id}@{s.source}" for s in sources))


def keyring_from_environment(project: Path | None = None) -> Keyring:
    """The keyring of a process started by pyinfra or by ``hxinfra deploy``.

    ``hxinfra`` passes its already-read passwords through an inherited pipe; otherwise
    ``HXINFRA_VAULT_ID`` (space or comma separated ``label@source``) and the fallbacks above.
    """
    fd = os.environ.get(PASSWORDS_FD_ENV)
    if fd:
        os.environ.pop(PASSWORDS_FD_ENV, None)  # read once; children of this process do not inherit it
        return Keyring(resolver=lambda: _read_pipe(int(fd)), description="passwords from hxinfra")
    ids = [x for x in os.environ.get(VAULT_IDS_ENV, "").replace(",", " ").split() if x]
    return keyring_from_sources(vault_ids=ids, project=project)


_default: Keyring | None = None


def default_keyring() -> Keyring:
    global _default
    if _default is None:
        from hxinfra.paths import find_project_root

        _default = keyring_from_environment(find_project_root())
    return _default


def set_default_keyring(keyring: Keyring | None) -> None:
    global _default
    _default = keyring


_registered: set[str] = set()
_short: set[str] = set()
PEM_ARMOR = re.compile(r"^-----(BEGIN|END) [A-Z0-9 ]+-----$")
# a secret shorter than this is still masked where it stands alone, but not inside other words
MIN_SECRET = 4


def _variants(value: str) -> set[str]:
    """The forms a secret takes on its way into files and commands: as typed, shell-quoted,
    SQL/postgresql.conf-quoted (``'`` doubled), JSON/C-escaped, upper and lower case."""
    forms = {value, shlex.quote(value), value.replace("'", "''"), json.dumps(value)[1:-1], value.upper(), value.lower()}
    forms |= {html.escape(value), html.escape(value, quote=False)}  # as an HTML report shows it
    forms.add(value.replace("\\", "\\\\").replace('"', '\\"'))
    return forms


def register_secret(value: str) -> None:
    """Remember a plaintext so :func:`redact` hides it in every form (and each long line of it)."""
    for form in _variants(value):
        if len(form) >= MIN_SECRET:
            _registered.add(form)
    if 0 < len(value.strip()) < MIN_SECRET:
        _short.add(value.strip())
    for line in (raw.strip() for raw in value.splitlines()):
        # PEM armor lines are the same in every key and certificate: masking them would
        # mangle every certificate in the output, and they reveal nothing
        if len(line) >= 8 and not PEM_ARMOR.match(line):
            _registered.update(f for f in _variants(line) if len(f) >= 8)


def redaction_epoch() -> tuple[int, int]:
    """Changes whenever :func:`redact` would mask more (a secret was registered since): what is
    kept of an earlier redaction is good while it stays the same."""
    return len(_registered), len(_short)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``********``.

    Short secrets (under four characters) are masked only as whole words after ``=``/``:`` or
    between quotes, so that a three-letter password does not blank every word that contains it.
    """
    for secret in sorted(_registered, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for secret in _short:
        if secret in text:
            text = re.sub(rf"(?<=[=:'\"\s]){re.escape(secret)}(?=$|[\s'\",;])", MASK, text)
    return text


def escape_html(text: object) -> str:
    """``text`` for an HTML page: redacted first, then escaped (an escaped secret is another string)."""
    return html.escape(redact(str(text)))


def registered_secrets() -> frozenset[str]:
    return frozenset(_registered)


class Secret(str):
    """A decrypted value: a real ``str`` (templates render it) whose ``repr`` never shows it."""

    __slots__ = ()

    def __new__(cls, value: str) -> Secret:
        obj = super().__new__(cls, value)
        register_secret(value)
        return obj

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def hidden(self) -> Any:
        """The value wrapped for a pyinfra command: pyinfra prints it as ``*MASKED*``."""
        from pyinfra.api.hiddenvalue import HiddenValue

        return HiddenValue(str.__str__(self))  # type: ignore[no-untyped-call]  # pyinfra's


class Placeholder(Secret):
    """What the offline plan renders in place of a vault value: ``vaulted-value-<ident>``.

    Code that must read a value (a PEM, a path) recognises it and leaves that entry out of the plan.
    It names no secret, so it is not registered for redaction: a rotated secret shows in a plan diff.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Placeholder:
        return str.__new__(cls, value)


class Vaulted:
    """A vault value, decrypted only when a deploy asks for it.

    Inline ``!vault`` values carry their vault text; the values of a whole-file vault are
    already decrypted (the file had to be, to know its keys) but stay wrapped the same way, so
    that nothing prints them: ``str()``, ``repr()`` and JSON all give the mask. ``ident`` is a
    stable name for the value that reveals nothing of it (the offline plan's placeholders).
    """

    __slots__ = ("vaulttext", "source", "_plain", "ident")

    def __init__(self, vaulttext: str, source: str = "<string>") -> None:
        self.vaulttext = vaulttext
        self.source = source
        self._plain: Secret | None = None
        self.ident = hashlib.sha256(vaulttext.encode()).hexdigest()[:12]

    @classmethod
    def opened(cls, plain: str, source: str, ident: str) -> Vaulted:
        """A value of a whole-file vault (decrypted with its file); ``ident`` names its place."""
        value = cls("", source)
        value._plain = Secret(plain)
        value.ident = hashlib.sha256(ident.encode()).hexdigest()[:12]
        return value

    def reveal(self, keyring: Keyring | None = None) -> Secret:
        if self._plain is None:
            data = (keyring or default_keyring()).decrypt(self.vaulttext, self.source)
            try:
                self._plain = Secret(data.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise VaultError(f"{self.source}: vaulted value is not UTF-8 text") from e
        return self._plain

    def check(self) -> None:
        """The vault text is well formed (a garbage ``!vault`` fails here, before anything connects)."""
        if self.vaulttext:
            parse_envelope(self.vaulttext, self.source)

    def to_json(self) -> str:  # pyinfra's JSON encoder (debug-inventory) uses this
        return MASK

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Vaulted({self.source})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vaulted):
            return False
        if self.vaulttext or other.vaulttext:
            return other.vaulttext == self.vaulttext
        return self._plain == other._plain

    def __hash__(self) -> int:
        return hash(self.ident)


class Composite(Vaulted):
    """A string built from plain text and vault values (``"postgresql://u:{{ vault_pw }}@db/x"``)."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Any], source: str) -> None:
        super().__init__("", source)
        self.parts = list(parts)
        self.ident = hashlib.sha256(
            "|".join(p.ident if isinstance(p, Vaulted) else p for p in parts).encode()
        ).hexdigest()[:12]

    def reveal(self, keyring: Keyring | None = None) -> Secret:
        if self._plain is None:
            self._plain = Secret("".join(str(reveal(p, keyring)) for p in self.parts))
        return self._plain

    def check(self) -> None:
        for p in self.parts:
            if isinstance(p, Vaulted):
                p.check()


class Sealed(Vaulted):
    """A value that lives in a vault file this run could not open (no password for its vault id).

    The offline plan and the inventory show it masked; a deploy that needs it fails, naming the
    key, the file and the vault id, and only then: hosts that do not read it are not held up.
    """

    __slots__ = ("reason",)

    def __init__(self, key: str, source: str, reason: str) -> None:
        super().__init__("", source)
        self.reason = reason
        self.ident = hashlib.sha256(f"{source}|{key}".encode()).hexdigest()[:12]

    def reveal(self, keyring: Keyring | None = None) -> Secret:
        raise VaultError(self.reason)


def reveal(value: Any, keyring: Keyring | None = None) -> Any:
    """``value`` with every :class:`Vaulted` inside (lists, dicts) decrypted to a :class:`Secret`."""
    if isinstance(value, Vaulted):
        return value.reveal(keyring)
    if isinstance(value, dict):
        return {k: reveal(v, keyring) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(reveal(v, keyring) for v in value)
    return value


def iter_vaulted(value: Any) -> Iterator[Vaulted]:
    if isinstance(value, Vaulted):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_vaulted(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from iter_vaulted(v)


def is_secret(value: Any) -> bool:
    return isinstance(value, Secret | Vaulted)


def mask(value: Any) -> Any:
    """``value`` with every secret inside it, at any depth, replaced by ``********`` (for display)."""
    if is_secret(value):
        return MASK
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


def mark_secret(value: Any, source: str, path: str = "") -> Any:
    """Every string inside ``value`` as an opened :class:`Vaulted` value (for whole-file vaults)."""
    if isinstance(value, str):
        return Vaulted.opened(value, source, f"{source}|{path}")
    if isinstance(value, dict):
        return {k: mark_secret(v, source, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [mark_secret(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def vault_block(vaulttext: str, indent: int = 10) -> str:
    """``!vault |`` and the vault text indented, as ``ansible-vault encrypt_string`` prints it."""
    pad = " " * indent
    return "!vault |\n" + "".join(f"{pad}{line}\n" for line in vaulttext.splitlines())
