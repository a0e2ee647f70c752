"""Secret values: a :class:`Vaulted` value (YAML ``!vault``) stays encrypted until a deploy asks for
it, and then becomes a :class:`Secret` (a ``str`` whose ``repr`` is masked and whose text is
registered, so :func:`~hxinfra.secrets.redact.redact` hides it); :class:`Composite` strings built
from them, and :class:`Sealed` values of vault files nobody could open."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from hxinfra.secrets.keyring import Keyring, default_keyring
from hxinfra.secrets.redact import MASK, register_secret
from hxinfra.secrets.vaultfile import VaultError, parse_envelope


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
