"""Release artifacts on the controller: a path or an https URL, always checked against the sha256
the data gives before anything is uploaded (a URL is downloaded once into the cache)."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from hxinfra.errors import HxError
from hxinfra.paths import cache_root


class ArtifactError(HxError):
    """An artifact is missing, unreachable, or not the one the data names by checksum."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(location: str, sha256: str, base: Path) -> Path:
    """The local file of ``location`` (relative paths from ``base``), verified against ``sha256``."""
    if location.startswith("https://"):
        cached = cache_root() / "artifacts" / sha256
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(f".{os.getpid()}.partial")
            try:
                with urllib.request.urlopen(location, timeout=60) as r, partial.open("wb") as f:  # noqa: S310 - https only
                    while block := r.read(1 << 20):
                        f.write(block)
            except OSError as e:
                partial.unlink(missing_ok=True)
                raise ArtifactError(f"artifact {location}: download failed: {e}") from None
            partial.rename(cached)
        path = cached
    else:
        path = Path(location) if Path(location).is_absolute() else base / location
        if not path.is_file():
            raise ArtifactError(f"artifact {location}: no such file")
    actual = _sha256(path)
    if actual != sha256:
        if location.startswith("https://"):
            path.unlink(missing_ok=True)
        raise ArtifactError(f"artifact {location}: sha256 {actual} is not the expected {sha256}; not used")
    return path


def checksums(directory: Path, name: str) -> dict[str, str]:
    """``version -> sha256`` of the ``<name>-<version>.tar.gz`` artifacts in ``directory``."""
    prefix, out = f"{name}-", {}
    for path in sorted(directory.glob(f"{name}-*.tar.gz")) if directory.is_dir() else []:
        out[path.name[len(prefix) : -len(".tar.gz")]] = _sha256(path)
    return out
