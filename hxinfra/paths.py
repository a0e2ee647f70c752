"""Where the project is: the directory with ``inventories/`` and ``deploys/``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hxinfra.errors import HxError


def find_project_root(start: Path | None = None) -> Path | None:
    """``HXINFRA_PROJECT``, else the nearest directory (upwards) with inventories/ and deploys/."""
    env = os.environ.get("HXINFRA_PROJECT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "inventories").is_dir() and (candidate / "deploys").is_dir():
            return candidate
    return None


def project_root(start: Path | None = None) -> Path:
    """Like :func:`find_project_root`, but an error outside a project."""
    root = find_project_root(start)
    if root is None:
        raise HxError("not inside an hxinfra project (no inventories/ and deploys/ here or above); set HXINFRA_PROJECT")
    return root


def cache_root() -> Path:
    """Outside any checkout: ``HXINFRA_CACHE``, else ``$XDG_CACHE_HOME/hxinfra`` (``~/.cache``)."""
    if os.environ.get("HXINFRA_CACHE"):
        return Path(os.environ["HXINFRA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hxinfra"


class FileText(str):
    """A file's text as data, with the path it was read from (``source``: where a renewal writes)."""

    source: str

    def __new__(cls, text: str, source: str) -> FileText:
        obj = super().__new__(cls, text)
        obj.source = source
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (FileText, (str(self), self.source))


def read_project_file(path: str) -> str:
    """A file the data names (a CA certificate, a key), read on the controller when the inventory
    loads: relative to the project root (else the working directory). A component's ``load`` hook
    gets this function, so its checks and plans read data, never files."""
    p = Path(path)
    if not p.is_absolute():
        p = (find_project_root() or Path.cwd()) / p
    try:
        return FileText(p.read_text(), str(p))
    except OSError as e:
        raise OSError(e.errno, f"cannot read {p}: {e.strerror}") from e
