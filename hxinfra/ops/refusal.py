"""An operation that cannot bring its host to the state asked fails that host alone, with one line.

pyinfra's own way, ``raise OperationError`` in the operation, works while changes are detected (the
engine fails that host and the others go on, see :func:`hxinfra.engine._prepare`), but while the
operation runs pyinfra re-raises it from the host's greenlet and the run stops on every host. So
while executing, a refusal is a command that fails with the line: the host fails as any failed
command fails it, its cause is that line, and the other hosts go on.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any


def refuse(message: str) -> Generator[Any, Any, None]:
    """Fail this host with ``message`` (one line): ``yield from refuse(...)`` then ``return``."""
    from pyinfra import state
    from pyinfra.api import StringCommand
    from pyinfra.api.exceptions import OperationError

    line = " ".join(message.split())
    if not state.is_executing:
        raise OperationError(line)
    yield StringCommand("sh", "-c", shlex.quote(f"printf '%s\\n' {shlex.quote('hxinfra: ' + line)} >&2; exit 1"))
