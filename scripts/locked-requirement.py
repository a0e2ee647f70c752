"""Print one package of uv.lock as a pip requirement with its hashes: ``NAME==VERSION --hash=...``.

``make install`` bootstraps the lock's own tool this way: pip installs uv with ``--require-hashes``
from what uv.lock says of it, and uv then installs everything else from the same lock.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirement(lock: Path, name: str) -> str:
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    for package in data.get("package", []):
        if package["name"] == name:
            hashes = [f["hash"] for f in [*package.get("wheels", []), package.get("sdist") or {}] if f.get("hash")]
            if not hashes:
                break
            return f"{name}=={package['version']} " + " ".join(f"--hash={h}" for h in hashes)
    raise SystemExit(f"{lock}: no package {name} with hashes in it (make lock)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: locked-requirement.py LOCKFILE PACKAGE")
    print(requirement(Path(sys.argv[1]), sys.argv[2]))
