"""Typed checks for data values, shared by every component.

Every value that ends up in a config line, a path or a command must have a known shape before
anything connects: a name, a DNS name, an IP address, an absolute path, a one-line string. Each
checker returns the value (as ``str``) or raises :class:`DataError` naming what was wrong, never
echoing more than the first characters of the value (it may be a secret).

Quoting still happens where a value reaches a shell (``shlex.quote``); these checks make sure a
value cannot change the *structure* of a config file (a newline, a ``;`` or a ``"``), which
quoting cannot fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from hxinfra.datafiles import looks_secret
from hxinfra.errors import HxError
from hxinfra.secrets import Vaulted, iter_vaulted

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
DNS_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
DNS_NAME = re.compile(rf"{DNS_LABEL}(\.{DNS_LABEL})*\.?")
# absolute, no whitespace, quotes, ';', '$', '`', '\\' or '..' segments
PATH = re.compile(r"/[A-Za-z0-9_.,%+@=:/-]*")


class DataError(HxError):
    """A data value of the wrong shape; raised before anything connects."""


def _shown(value: Any) -> str:
    text = repr(str(value))
    return text if len(text) <= 40 else text[:37] + "...'"


def _sealed(value: Any) -> TypeGuard[str]:
    """A vault value not decrypted yet (a string once decrypted): inventory checks pass it; the
    deploy checks it decrypted."""
    return isinstance(value, Vaulted)


def one_line(value: Any, what: str) -> str:
    """Any string without a newline or another control character."""
    if _sealed(value):
        return value
    if not isinstance(value, str):
        raise DataError(f"{what}: expected a string, got {type(value).__name__}")
    if CONTROL.search(value):
        raise DataError(f"{what}: must be one line (no newline or control character)")
    return value


def name(value: Any, what: str, pattern: re.Pattern[str] = NAME) -> str:
    """A plain name: letters, digits, ``_``, ``.`` and ``-`` (never ``..`` or a leading ``.``)."""
    if _sealed(value):
        return value
    text = one_line(value, what)
    if not pattern.fullmatch(text) or ".." in text:
        raise DataError(f"{what}: {_shown(text)} is not a valid name (letters, digits, '_', '.', '-')")
    return text


def dns_name(value: Any, what: str, wildcard: bool = False) -> str:
    """A host or domain name (``*.example.org`` only with ``wildcard``)."""
    if _sealed(value):
        return value
    text = one_line(value, what)
    bare = text[2:] if wildcard and text.startswith("*.") else text
    if len(bare) > 253 or not DNS_NAME.fullmatch(bare):
        raise DataError(f"{what}: {_shown(text)} is not a DNS name")
    return text


def ip_address(value: Any, what: str) -> str:
    if _sealed(value):
        return value
    text = one_line(value, what)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise DataError(f"{what}: {_shown(text)} is not an IP address") from None
    return text


def host_or_ip(value: Any, what: str) -> str:
    if _sealed(value):
        return value
    text = one_line(value, what)
    try:
        return ip_address(text, what)
    except DataError:
        return dns_name(text, what)


def network(value: Any, what: str) -> str:
    if _sealed(value):
        return value
    text = one_line(value, what)
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise DataError(f"{what}: {_shown(text)} is not a network in CIDR form ({e})") from None
    return text


def abs_path(value: Any, what: str) -> str:
    """An absolute path that is safe in a config line and a shell word: no spaces, quotes or ``..``."""
    if _sealed(value):
        return value
    text = one_line(value, what)
    if not PATH.fullmatch(text) or "/../" in f"{text}/" or "/./" in f"{text}/":
        raise DataError(f"{what}: {_shown(text)} must be an absolute path of letters, digits and _.,%+@=:/- (no '..')")
    return text


def port(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise DataError(f"{what}: {_shown(value)} is not a port (1-65535)")
    return value


def choice(value: Any, what: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise DataError(f"{what}: {_shown(value)} is not one of {', '.join(allowed)}")
    return str(value)


def fields(entry: Any, what: str, required: Iterable[str], optional: Iterable[str] = ()) -> Mapping[str, Any]:
    """A dict entry of a list: required fields present, no unknown field (a typo is an error)."""
    required, optional = set(required), set(optional)
    if not isinstance(entry, Mapping):
        raise DataError(f"{what}: must be a mapping with {', '.join(sorted(required))}")
    unknown = set(entry) - required - optional
    if unknown:  # first: a typo ("comands") is the likely cause of a missing field too
        allowed = ", ".join(sorted(required | optional))
        raise DataError(f"{what}: unknown field(s) {', '.join(sorted(map(str, unknown)))} (allowed: {allowed})")
    missing = required - set(entry)
    if missing:
        raise DataError(f"{what}: missing field(s) {', '.join(sorted(missing))}")
    return entry


Check = Callable[[Mapping[str, Any]], object]


def collect(data: Mapping[str, Any], checks: Mapping[str, Check]) -> list[tuple[str, str]]:
    """Run ``{key: check(data)}`` and return ``(key, problem)`` for each that raised an HxError.

    A check written for plain values may meet a vault value anywhere an operator put one (an
    imported Ansible inventory does): a value holding one is passed over here and checked by the
    deploy once decrypted (:func:`hxinfra.deploytools.component_data`). Any other value a check
    could not even read is a problem of that key, said as one, never an internal exception."""
    problems = []
    for key, check in checks.items():
        try:
            check(data)
        except HxError as e:
            problems.append((key, str(e)))
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
            value = data.get(key)
            if any(iter_vaulted(value)):
                continue
            shown = "a value" if looks_secret(key) else _shown(value)
            problems.append((key, f"{shown} of the wrong shape ({type(e).__name__}: {e})"))
    return problems
