"""Wheelhouses: the distributions a requirement needs, downloaded once on the controller for the
hosts' Python and uploaded to hosts that have no route to a package index.

``pip download`` resolves with the *controller's* interpreter: environment markers such as
``python_full_version < "3.11.3"`` are evaluated for it, not for the host (``--python-version``
changes wheel tags, not markers). A host on 3.11.2 then misses a dependency the controller does
not need. So after the download, the wheelhouse's own metadata is walked from the requirement
with the *host's* marker environment (``packaging``), and whatever the host needs but the
wheelhouse lacks is downloaded too, until nothing is missing.

Wheelhouses are cached per requirement and target outside any checkout (``HXINFRA_CACHE``, else
``~/.cache/hxinfra``), packed as one tar file: one upload per host, and a cache a CI job can keep.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from hxinfra.errors import HxError
from hxinfra.paths import cache_root


class WheelhouseError(HxError):
    """A wheelhouse could not be built (no index, no matching distribution...)."""


@dataclass(frozen=True)
class Target:
    """The interpreter and platform of the hosts that install from the wheelhouse."""

    python: str  # full version, e.g. 3.11.2
    machine: str = "x86_64"

    @property
    def minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def markers(self, extra: str = "") -> dict[str, str]:
        """The marker environment of such a host (CPython on Linux)."""
        return {
            "python_version": self.minor,
            "python_full_version": self.python,
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_release": "",
            "platform_version": "",
            "extra": extra,
        }


def _dists(directory: Path) -> Iterator[tuple[str, Version, Path]]:
    for path in directory.iterdir():
        try:
            if path.name.endswith(".whl"):
                name, version, _, _ = parse_wheel_filename(path.name)
            elif path.name.endswith((".tar.gz", ".zip")):
                name, version = parse_sdist_filename(path.name)
            else:
                continue
        except ValueError:
            continue
        yield canonicalize_name(name), version, path


def _requires(wheel: Path) -> list[Requirement]:
    """``Requires-Dist`` of a wheel, read from its METADATA (an sdist's are not known: none)."""
    if not wheel.name.endswith(".whl"):
        return []
    with zipfile.ZipFile(wheel) as archive:
        meta = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            return []
        headers = HeaderParser().parsestr(archive.read(meta).decode("utf-8", "replace"))
    return [Requirement(r) for r in headers.get_all("Requires-Dist") or []]


def missing(directory: Path, requirements: list[str], target: Target) -> list[Requirement]:
    """What the target host needs, from ``requirements`` down, that no distribution here satisfies."""
    dists: dict[str, list[tuple[Version, Path]]] = {}
    for name, version, path in _dists(directory):
        dists.setdefault(name, []).append((version, path))
    wanted = [Requirement(r) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    lacking: dict[str, Requirement] = {}
    while wanted:
        req = wanted.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        match = [(v, p) for v, p in dists.get(key[0], []) if req.specifier.contains(v, prereleases=True)]
        if not match:
            lacking[str(req)] = req
            continue
        _, wheel = max(match)
        for dep in _requires(wheel):
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate(target.markers(e)) for e in extras):
                wanted.append(
                    Requirement(
                        f"{dep.name}{'[' + ','.join(sorted(dep.extras)) + ']' if dep.extras else ''}{dep.specifier}"
                    )
                )
    return list(lacking.values())


def _pip_download(directory: Path, requirements: list[str], target: Target) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "-d", str(directory)]
    if target.minor != f"{sys.version_info.major}.{sys.version_info.minor}":
        # another interpreter than the controller's: wheels only, for its tags
        cmd += [
            "--only-binary=:all:",
            "--python-version",
            target.minor,
            "--implementation",
            "cp",
            "--platform",
            f"manylinux2014_{target.machine}",
            "--platform",
            f"manylinux_2_28_{target.machine}",
            "--platform",
            "linux_" + target.machine,
        ]
    result = subprocess.run([*cmd, *requirements], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = [line for line in result.stderr.splitlines() if line.startswith("ERROR")][
            -3:
        ] or result.stderr.splitlines()[-3:]
        raise WheelhouseError(f"pip download {' '.join(requirements)} failed: {' / '.join(tail)}")


def build(requirements: list[str], target: Target, root: Path | None = None) -> Path:
    """The wheelhouse of ``requirements`` for ``target`` as one tar file (cached; built once, also
    across concurrent deploys: a lock per wheelhouse)."""
    for r in requirements:  # a malformed requirement is an error before anything runs
        Requirement(r)
    key = hashlib.sha256(f"{' '.join(requirements)}|{target.python}|{target.machine}".encode()).hexdigest()[:16]
    base = (root or cache_root()) / "wheelhouse"
    base.mkdir(parents=True, exist_ok=True)
    tar = base / f"{key}.tar"
    if tar.exists():
        return tar
    directory = base / key
    with open(base / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tar.exists():
            return tar
        directory.mkdir(exist_ok=True)
        _pip_download(directory, list(requirements), target)
        for _ in range(5):  # the host's markers may want what the controller's did not
            lacking = missing(directory, requirements, target)
            if not lacking:
                break
            _pip_download(directory, [str(r) for r in lacking], target)
        else:
            raise WheelhouseError(
                f"wheelhouse for {' '.join(requirements)} still lacks: {', '.join(map(str, lacking))}"
            )
        partial = tar.with_suffix(".tar.partial")
        with tarfile.open(partial, "w") as out:
            for path in sorted(directory.iterdir()):
                out.add(path, arcname=path.name)
        partial.rename(tar)
    return tar
