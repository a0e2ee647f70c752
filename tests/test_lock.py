"""The install is reproducible: uv.lock pins every package with its hashes, matches pyproject.toml,
and is what the venv holds; the gate's tools are pinned exactly, direct dependencies bounded."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
PACKAGES = {canonicalize_name(p["name"]): p for p in LOCK["package"]}


def _requirements(group: str | None = None) -> list[Requirement]:
    deps = PROJECT["project"]["dependencies"] if group is None else PROJECT["project"]["optional-dependencies"][group]
    return [Requirement(d) for d in deps]


def test_the_gate_tools_are_pinned_exactly() -> None:
    pins = {r.name.lower(): str(r.specifier) for r in _requirements("dev")}
    for tool in ("pytest", "ruff", "mypy", "uv"):
        assert pins[tool].startswith("==") and "," not in pins[tool], (tool, pins[tool])
        assert PACKAGES[tool]["version"] == pins[tool][2:], tool


@pytest.mark.parametrize("group", [None, "dev"])
def test_every_direct_dependency_has_an_upper_bound(group: str | None) -> None:
    for req in _requirements(group):
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), f"{req} has no upper bound"


def test_every_locked_package_has_hashes() -> None:
    for name, package in PACKAGES.items():
        if package.get("source", {}).get("editable") or package.get("source", {}).get("virtual"):
            continue  # hxinfra itself
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files and all(f.get("hash", "").startswith("sha256:") for f in files), name


def test_the_venv_holds_what_the_lock_pins() -> None:
    """make install installed from the lock: each locked package of the venv is at its locked version."""
    checked = 0
    for name, package in PACKAGES.items():
        if name == "hxinfra":
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # for another platform or Python (the lock is universal), or another extra
        assert installed == package["version"], (name, installed, package["version"])
        checked += 1
    assert checked > 40, checked


def test_the_lock_matches_pyproject() -> None:
    """What CI's make lock-check asks: a lock that pyproject.toml no longer matches fails (offline)."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "uv comes from the lock into the venv (make install)"
    r = subprocess.run([uv, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_stale_lock_is_refused(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    text = (tmp_path / "pyproject.toml").read_text().replace('"pyyaml>=6.0,<7",', '"pyyaml>=6.0,<7",\n    "rich>=13",')
    (tmp_path / "pyproject.toml").write_text(text)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv
    # not offline: resolving the changed requirements reads package metadata that a fresh machine's
    # uv cache does not hold yet (offline it fails for that reason, not for the stale lock)
    r = subprocess.run([uv, "lock", "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "needs to be updated" in r.stderr and "uv lock" in r.stderr, r.stderr


def test_uv_is_bootstrapped_from_the_lock_with_its_hashes() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts/locked-requirement.py"), str(ROOT / "uv.lock"), "uv"],
        capture_output=True,
        text=True,
        check=True,
    )
    line = r.stdout.strip()
    assert line.startswith(f"uv=={PACKAGES['uv']['version']} --hash=sha256:")
    assert line.count("--hash=") == len(PACKAGES["uv"]["wheels"]) + (1 if "sdist" in PACKAGES["uv"] else 0)
