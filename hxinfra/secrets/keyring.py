"""Vault passwords: where they come from (files, scripts, a pipe, the terminal, ``--vault-id``)
and the :class:`Keyring` that opens vault files and values with them."""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hxinfra.secrets.vaultfile import DEFAULT_ID, VaultError, _decrypt_body, _WrongPassword, encrypt, parse_envelope

# how the hxinfra CLI hands its passwords to the pyinfra process it runs (an inherited pipe)
PASSWORDS_FD_ENV = "HXINFRA_VAULT_PASSWORDS_FD"


PASSWORD_FILE_ENV = "HXINFRA_VAULT_PASSWORD_FILE"  # noqa: S105 - a variable name


VAULT_IDS_ENV = "HXINFRA_VAULT_ID"


PROJECT_PASSWORD_FILE = ".vault_pass"  # noqa: S105 - a file name


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
