"""Redaction: every secret text a run has decrypted (and the forms it takes on its way: escaped,
quoted, base64...) is registered, and :func:`redact` hides it in diffs, logs and reports."""

from __future__ import annotations

import html
import json
import re
import shlex

MASK = "********"


PEM_ARMOR = re.compile(r"^-----(BEGIN|END) [A-Z0-9 ]+-----$")


# a secret shorter than this is still masked where it stands alone, but not inside other words
MIN_SECRET = 4


_registered: set[str] = set()


_short: set[str] = set()


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
