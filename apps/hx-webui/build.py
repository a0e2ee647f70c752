"""Build the web UI's release artifact: ``hx-webui-<version>.tar.gz`` (byte-for-byte reproducible,
so its sha256 is stable), holding ``app.py`` and ``VERSION``.

    python apps/hx-webui/build.py 1.0.0 --out DIR [--broken]

prints the artifact's path and sha256. ``--broken`` builds a release whose /health always fails
(for blue-green tests).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(version: str, out: Path, broken: bool = False) -> tuple[Path, str]:
    """Write the artifact into ``out``; return its path and sha256."""
    files = {"app.py": (HERE / "app.py").read_bytes(), "VERSION": f"{version}\n".encode()}
    if broken:
        files["BROKEN"] = b"this release fails its health check on purpose\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"hx-webui-{version}.tar.gz"
    with path.open("wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(raw.getvalue())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--broken", action="store_true")
    args = parser.parse_args()
    p, digest = build(args.version, args.out, args.broken)
    print(p, digest)
