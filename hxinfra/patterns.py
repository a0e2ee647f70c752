"""Ansible host patterns and ``serial`` batches, so operators keep their ``--limit`` and ``serial`` habits.

Patterns (``--limit``): ``all`` or ``*``; a group or host name; globs (``hx-web-*``, on host and
group names); ``~regex`` (matched from the start of host and group names, as Ansible does); subscripts
``group[0]``, ``group[1:3]``, ``group[-1]``; combined with ``:`` or ``,`` as a union, ``!x`` to
exclude and ``&x`` to intersect. As in Ansible, unions are taken first, then intersections,
then exclusions, whatever the order written; the result keeps inventory order. A term that
matches nothing is an error (a typo must not silently deploy to fewer hosts).

Serial (``--serial``): ``N``, ``N%`` or a ramp ``1,5,25%``; the last size repeats until every
host is in a batch; a percentage is of all selected hosts, rounded down, at least 1.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping, Sequence

from hxinfra.errors import HxError


class PatternError(HxError):
    """A host pattern or serial value that cannot be used."""


_SUBSCRIPT = re.compile(r"^(?P<name>.+?)\[(?P<start>-?\d+)?(?:(?P<colon>:)(?P<end>-?\d+)?)?\]$")


def split_pattern(pattern: str) -> list[str]:
    """Terms of a pattern: split on ``,`` when present (regexes may hold ``:``), else on ``:``."""
    pattern = pattern.strip()
    if not pattern:
        raise PatternError("empty host pattern")
    parts = pattern.split(",") if "," in pattern else re.split(r":(?![^\[]*\])", pattern)
    terms = [p.strip() for p in parts if p.strip()]
    if not terms:
        raise PatternError(f"host pattern {pattern!r} has no terms")
    return terms


def _match_term(term: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:  # noqa: C901 - one branch per Ansible pattern form
    if term in ("all", "*"):
        return list(hosts)
    m = _SUBSCRIPT.match(term)
    if m and not term.startswith("~"):
        base = _match_term(m["name"], hosts, groups)
        start = int(m["start"]) if m["start"] else 0
        if m["colon"]:
            end = int(m["end"]) + 1 if m["end"] else len(base)
            picked = base[start:end]
        else:
            picked = base[start : start + 1] if start >= 0 else base[start:][:1]
        if not picked:
            raise PatternError(f"host pattern term {term!r}: subscript out of range ({len(base)} hosts)")
        return picked
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as e:
            raise PatternError(f"host pattern term {term!r}: bad regex: {e}") from e
        matched = [h for h in hosts if regex.match(h)]
        for g, members in groups.items():  # as Ansible: a regex names groups too
            if regex.match(g):
                matched += members
    elif term in groups:
        matched = list(groups[term])
    elif term in hosts:
        matched = [term]
    else:
        matched = [h for h in hosts if fnmatch.fnmatchcase(h, term)]
        for g, members in groups.items():
            if fnmatch.fnmatchcase(g, term):
                matched += members
    if not matched:
        raise PatternError(f"host pattern term {term!r} matches no host or group")
    return matched


def select(patterns: str | Sequence[str], hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The hosts (in inventory order) that one or more patterns select; several are a union."""
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: set[str] = set()
    for pattern in patterns:
        terms = split_pattern(pattern)
        plus = [t for t in terms if not t.startswith(("!", "&"))]
        ands = [t[1:] for t in terms if t.startswith("&")]
        nots = [t[1:] for t in terms if t.startswith("!")]
        selected = set()
        for t in plus or ["all"]:
            selected.update(_match_term(t, hosts, groups))
        for t in ands:
            selected &= set(_match_term(t, hosts, groups))
        for t in nots:
            selected -= set(_match_term(t, hosts, groups))
        chosen |= selected
    if not chosen:  # as Ansible: a limit that leaves no host is an error, never an empty success
        raise PatternError(f"host pattern {' '.join(patterns)!r} selects no host")
    return [h for h in hosts if h in chosen]


def parse_serial(value: str | int | Sequence[str | int] | None) -> list[str]:
    """``"1,5,25%"`` -> ``["1", "5", "25%"]``; validated."""
    if value is None or value == "":
        return []
    items = [str(v) for v in value] if isinstance(value, list | tuple) else str(value).split(",")
    out = []
    for raw in items:
        item = raw.strip()
        number = item[:-1] if item.endswith("%") else item
        if not number.isdigit() or (item.endswith("%") and not 0 < int(number) <= 100):
            raise PatternError(f"serial value {raw!r} is not N, N% (1-100) or a list of them")
        out.append(item)
    return out


def batch_size(item: str, total: int) -> int:
    """Ansible's rule: a percentage of all hosts, rounded down, at least 1; 0 means all."""
    if item.endswith("%"):
        return max(1, int(int(item[:-1]) / 100.0 * total))
    n = int(item)
    return total if n == 0 else n


def batches(hosts: Sequence[str], serial: Sequence[str]) -> list[list[str]]:
    """Split hosts into the batches the whole deploy runs on, one after another."""
    hosts = list(hosts)
    if not serial or not hosts:
        return [hosts] if hosts else []
    out: list[list[str]] = []
    i = 0
    while hosts:
        size = batch_size(serial[min(i, len(serial) - 1)], len(hosts) + sum(map(len, out)))
        out.append(hosts[:size])
        hosts = hosts[size:]
        i += 1
    return out


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """``"2/4"`` -> ``(2, 4)``: shard 2 of 4 (1-based)."""
    if not value:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise PatternError(f"shard {value!r} is not K/N with 1 <= K <= N")
    return int(m.group(1)), int(m.group(2))


def shard(hosts: Sequence[str], k: int, n: int) -> list[str]:
    """The hosts of shard ``k`` of ``n``: each host by a hash of its name, so a host stays in the same
    shard across runs whatever else is selected (N CI jobs split one rollout without overlap)."""
    return [h for h in hosts if int(hashlib.sha256(h.encode()).hexdigest(), 16) % n == k - 1]


def exceeds(failed: int, batch: int, max_fail_percentage: float) -> bool:
    """Ansible's ``max_fail_percentage``: stop when the batch's failure rate is above it."""
    return batch > 0 and failed * 100.0 / batch > max_fail_percentage
