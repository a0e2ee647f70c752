"""Facts batched per host and reused within a run: one round trip for many paths, units or packages.

pyinfra 3 reads a fact every time an operation asks for it: a no-op site run paid ~6 commands
per host per component (the apt stamp, ``date`` and ``dpkg -l`` for every ``apt.packages``, two
``systemctl show`` for every ``systemd.service``, one stat per config set). Here the operations
of :mod:`hxinfra.ops` name what they will look at when the deploy code calls them
(``want``); the first of them to run on a host then fetches everything named so far of that kind
in one command, and the others read the answer (``lookup``).

An answer is reused only while nothing has changed the host: the cache is keyed by the number
of operations that executed commands on it so far, so after any change (an install, a restart,
a file written) the next lookup reads the host again. In check mode nothing executes, so every
answer of the run stays valid.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra import host, state
from pyinfra.api import FactBase
from pyinfra.context import ctx_host, ctx_state
from typing_extensions import override

from hxinfra.paths import cache_root

# what may be batched: paths (PathStates), units, packages, accounts, contents (small text files)
KINDS = ("paths", "units", "packages", "accounts", "contents")


# a line of sha256sum: the digest, two spaces (text mode) or a space and a star, the name
SHA256_LINE = re.compile(r"^(?P<escaped>\\?)(?P<sha256>[0-9a-f]{64}) [ *](?P<path>.*)$")


class PathStates(FactBase[dict[str, dict[str, Any]]]):
    """Type, mode, owner, group, sha256 and link target of several paths in one round trip.

    Kinds: F regular file, L symlink, D directory, O anything else, N nothing there.
    """

    default = dict

    @override
    def command(self, paths: Sequence[str]) -> str:
        # links, directories and the rest one by one (few); every regular file in one stat and one
        # sha256sum at the end: a process or two per file made this the costliest read of a no-op
        quoted = " ".join(shlex.quote(p) for p in paths)
        return (
            f"set --; for p in {quoted}; do "
            'if [ -L "$p" ]; then printf "L\\t%s\\t%s\\n" "$p" "$(readlink "$p")"; '
            'elif [ -f "$p" ]; then set -- "$@" "$p"; '
            'elif [ -d "$p" ]; then printf "D\\t%s\\t%s\\n" "$p" "$(stat -c "%a %U %G" "$p")"; '
            'elif [ -e "$p" ]; then printf "O\\t%s\\n" "$p"; '
            'else printf "N\\t%s\\n" "$p"; fi; done; '
            'if [ $# -gt 0 ]; then stat --printf "F\\t%n\\t%a %U %G\\n" -- "$@"; sha256sum -- "$@"; fi; true'
        )

    @override
    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        states: dict[str, dict[str, Any]] = {}
        sums: dict[str, str] = {}
        for line in output:
            if hashed := SHA256_LINE.match(line):
                name = hashed["path"]
                if hashed["escaped"]:  # sha256sum's escaping of a name with a backslash or a newline
                    name = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], name)
                sums[name] = hashed["sha256"]
                continue
            parts = line.split("\t")
            kind, path = parts[0], parts[1]
            state: dict[str, Any] = {"kind": kind}
            if kind == "L":
                state["target"] = parts[2]
            elif kind in ("F", "D"):
                mode, user, group = parts[2].split()
                state.update(mode=int(mode, 8), user=user, group=group)
            states[path] = state
        for path, state in states.items():
            if state["kind"] == "F":
                state["sha256"] = sums.get(path, "")  # "" when it could not be read: a content change
        return states


class UnitStates(FactBase[dict[str, dict[str, str]]]):
    """unit -> {"load", "active", "sub", "file"} for several units in one ``systemctl show``."""

    default = dict

    @override
    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "systemctl"

    @override
    def command(self, units: Sequence[str]) -> str:
        names = " ".join(shlex.quote(u) for u in units)
        return f"systemctl show -p Id -p LoadState -p ActiveState -p SubState -p UnitFileState -- {names}"

    @override
    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        keys = {"LoadState": "load", "ActiveState": "active", "SubState": "sub", "UnitFileState": "file"}
        units: dict[str, dict[str, str]] = {}
        current: dict[str, str] = {}
        for line in [*output, ""]:
            if not line.strip():  # a blank line ends one unit's block
                if "Id" in current:
                    units[current.pop("Id")] = current
                current = {}
                continue
            key, _, value = line.partition("=")
            if key == "Id":
                current["Id"] = value
            elif key in keys:
                current[keys[key]] = value
        return units


class InstalledPackages(FactBase[dict[str, str]]):
    """package -> installed version, for the named packages only (one ``dpkg-query``)."""

    default = dict

    @override
    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "dpkg-query"

    @override
    def command(self, packages: Sequence[str]) -> str:
        names = " ".join(shlex.quote(p) for p in packages)
        # unknown names are an error line on stderr and exit 1: the others are still listed
        return f"dpkg-query -W -f '${{Package}}\\t${{Status}}\\t${{Version}}\\n' -- {names} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> dict[str, str]:
        installed = {}
        for line in output:
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].endswith(" installed"):
                installed[parts[0]] = parts[2]
        return installed


class Accounts(FactBase[dict[str, dict[str, str]]]):
    """account -> {"home", "shell"} for the named local accounts that exist (one ``getent``)."""

    default = dict

    @override
    def command(self, accounts: Sequence[str]) -> str:
        names = " ".join(shlex.quote(a) for a in accounts)
        return f'for a in {names}; do getent passwd "$a"; done; true'

    @override
    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        found = {}
        for line in output:
            parts = line.split(":")
            if len(parts) == 7:
                found[parts[0]] = {"home": parts[5], "shell": parts[6]}
        return found


class FileTexts(FactBase[dict[str, str]]):
    """path -> text of the named files that exist (small ones: /etc/os-release, a PAM file...)."""

    default = dict

    @override
    def command(self, contents: Sequence[str]) -> str:
        names = " ".join(shlex.quote(p) for p in contents)
        return f'for p in {names}; do if [ -f "$p" ]; then printf "%s\\t%s\\n" "$p" "$(base64 -w0 < "$p")"; fi; done'

    @override
    def process(self, output: list[str]) -> dict[str, str]:
        import base64

        texts = {}
        for line in output:
            path, _, encoded = line.partition("\t")
            if path:
                texts[path] = base64.b64decode(encoded).decode("utf-8", errors="replace")
        return texts


@dataclass
class _HostCache:
    name: str
    epoch: int = -1
    wanted: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    values: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    facts: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    # the keys the previous run on this host looked at (see _remembered): prefetched with the wanted ones
    remembered: dict[str, set[str]] | None = None
    used: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})


def _keys_file(name: str) -> Path:
    return cache_root() / "batch-keys" / f"{name}.json"


def _remembered(cache: _HostCache) -> dict[str, set[str]]:
    """Which keys the previous run on this host looked at: names only (paths, units, packages),
    never a value. In check mode every operation reads the host as the deploy code calls it, before
    later operations have named their keys; the previous run's names let the first read of a kind
    fetch them all. A wrong or missing list costs an extra command, never a wrong answer."""
    if cache.remembered is None:
        try:
            raw = json.loads(_keys_file(cache.name).read_text())
            cache.remembered = {k: {str(x) for x in raw.get(k, [])} for k in KINDS}
        except (OSError, ValueError, AttributeError):
            cache.remembered = {k: set() for k in KINDS}
    return cache.remembered


def remember() -> None:
    """Keep, per host of the runs of this process, the keys it looked at, for the next run (see
    _remembered). ``hxinfra deploy`` calls it after each run; under the plain pyinfra CLI it runs
    when the process exits."""
    for name, cache in [item for per_state in list(_caches.values()) for item in per_state.items()]:
        used = {k: sorted(v) for k, v in cache.used.items() if v}
        if not used or {k: set(v) for k, v in used.items()} == {k: v for k, v in _remembered(cache).items() if v}:
            continue
        path = _keys_file(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(used))
            tmp.replace(path)
        except OSError:
            pass  # only a hint for the next run


_caches: weakref.WeakKeyDictionary[Any, dict[str, _HostCache]] = weakref.WeakKeyDictionary()


_exit_hook = False


def _per_state() -> dict[str, _HostCache]:
    global _exit_hook
    run = ctx_state.get()  # type: ignore[no-untyped-call]  # pyinfra's
    if run not in _caches:
        if not _exit_hook:
            _exit_hook = True
            atexit.register(remember)
        _caches[run] = {}
    return _caches[run]


def _host_cache(target: Any) -> _HostCache:
    caches = _per_state()
    if target.name not in caches:
        caches[target.name] = _HostCache(target.name)
    return caches[target.name]


def _cache(target: Any = None) -> _HostCache:
    """The run's cache of ``target`` (the current host by default), emptied when something changed it."""
    target = ctx_host.get() if target is None else target  # type: ignore[no-untyped-call]  # pyinfra's
    cache = _host_cache(target)
    epoch = _epoch(target)
    if epoch != cache.epoch:  # something changed the host: what was read before may be stale
        cache.epoch = epoch
        cache.facts.clear()
        for values in cache.values.values():
            values.clear()
    return cache


def _epoch(target: Any) -> int:
    """How many operations have executed commands on ``target`` so far in this run."""
    ops = state.ops.get(target, {})
    return sum(1 for data in ops.values() if data.operation_meta.executed)


def want(kind: str, keys: Iterable[str]) -> None:
    """Name what an operation will look at (called when the deploy code calls the operation)."""
    _host_cache(ctx_host.get()).wanted[kind].update(keys)  # type: ignore[no-untyped-call]  # pyinfra's


def _fact(kind: str) -> type[FactBase[Any]]:
    facts: dict[str, type[FactBase[Any]]] = {
        "paths": PathStates,
        "units": UnitStates,
        "packages": InstalledPackages,
        "accounts": Accounts,
        "contents": FileTexts,
    }
    return facts[kind]


def lookup(kind: str, keys: Sequence[str]) -> dict[str, Any]:
    """What the host says of ``keys`` (``None`` for a key it knows nothing of), read in one command
    together with every key of this kind named so far and not yet read since the last change."""
    cache = _cache()
    cache.used[kind].update(keys)
    known = cache.values[kind]
    missing = [k for k in keys if k not in known]
    if missing:
        ahead = cache.wanted[kind] | _remembered(cache)[kind]
        fetch = sorted((ahead - known.keys()) | set(missing))
        answer = host.get_fact(_fact(kind), **{kind: fetch})
        for key in fetch:
            known[key] = answer.get(key)
    return {k: known[k] for k in keys}


def fact(cls: type[FactBase[Any]], on: Any = None, **kwargs: Any) -> Any:
    """``host.get_fact(cls, **kwargs)`` read once per run (and again only after a change of the
    host): for a fact several steps of a run read (the distribution, a file another component
    also looks at, an application server's release state every web host's pool asks for).
    ``on``: another host of the run (its own cache)."""
    # the proxy of the current host, unwrapped
    target = ctx_host.get() if on is None or on is host else on  # type: ignore[no-untyped-call]  # pyinfra's
    cache = _cache(target)
    key = (cls, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
    if key not in cache.facts:
        cache.facts[key] = target.get_fact(cls, **kwargs)
    return cache.facts[key]
