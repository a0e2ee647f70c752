"""A run log for ``hxinfra deploy``, the counterpart of Ansible's ``log_path``.

Operators keep a record of who ran what, where, and what changed. Every line is redacted again
at the file boundary (vault plaintexts become ``********``), whatever path it came by, and the
file is created private (0600) because a log outlives the terminal it was printed on.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from hxinfra.errors import HxError
from hxinfra.secrets import redact


class Sink(Protocol):
    """Where progress lines go: the console, or a :class:`Tee` of the console and the run log."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours of the console, not for a file


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class RunLog:
    """Appends timestamped, redacted lines to a private log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # never through a symlink (it could point anywhere), and private even if it existed
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            why = "it is a symlink" if path.is_symlink() else e.strerror
            raise HxError(f"cannot open log file {path}: {why}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise HxError(f"cannot open log file {path}: not a regular file")
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._partial = ""

    def write(self, text: str) -> None:
        """Write ``text`` (any number of lines; a trailing partial line waits for its end)."""
        text = self._partial + ANSI.sub("", redact(text))
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._file.write(f"{_stamp()} {line.rstrip()}\n")
        self._file.flush()

    def start(self, command: str, env: str, fields: Sequence[tuple[str, object]]) -> None:
        """The header of one run: who, what and where; values of ``-e`` are never logged."""
        described = "  ".join(f"{k}={v}" for k, v in fields if v not in (None, (), [], False, ""))
        self.write(f"=== {command} --env {env}  user={getpass.getuser()} pid={os.getpid()}  {described}\n")

    def close(self) -> None:
        if self._partial:
            self.write("\n")
        self._file.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        """A clear error (bad input, unknown host...) is part of the record; the file is closed."""
        if isinstance(error, HxError):
            self.write(f"error: {error}\n")
        self.close()


class Tee:
    """A text stream that writes to the console and, when there is one, to the run log."""

    def __init__(self, console: IO[str], runlog: RunLog | None) -> None:
        self.console = console
        self.runlog = runlog

    def write(self, text: str) -> int:
        self.console.write(text)
        if self.runlog is not None:
            self.runlog.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
