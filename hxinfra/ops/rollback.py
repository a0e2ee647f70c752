"""Changes that undo themselves: ``verify_or_restore`` (a check after the change went live),
``arm_rollback`` and ``confirm_reconnect`` (a change that could cut the controller off is put
back by a timer on the host unless the controller logs in anew)."""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra.api import StringCommand, operation
from pyinfra.api.exceptions import OperationError

from hxinfra.ops.kept import DEFAULT_BACKUP_DIR, restore_commands


@operation(is_idempotent=False)
def verify_or_restore(
    check: str, paths: list[str], then: str, backup_dir: str = DEFAULT_BACKUP_DIR
) -> Generator[Any, Any, None]:
    """
    Run ``check`` after a change went live; when it fails, put back the previous version of
    ``paths`` (kept by the ``config_set`` that changed them in this run), run ``then`` (a reload)
    and fail: a change that breaks the service undoes itself.

    + check: shell command that must succeed
    + paths: the config paths changed in this run (only run this with ``_if=<that op>.did_change``)
    + then: shell command that makes the restored files live (e.g. ``nginx -t && systemctl reload nginx``)
    + backup_dir: where config_set kept the previous versions
    """
    q = shlex.quote
    restore = restore_commands(paths, backup_dir)
    script = (
        f"out=$( {check} 2>&1 ) || {{ printf '%s\\n' \"$out\" >&2; {restore} ; ( {then} ) >&2 2>&1; "
        "echo 'hxinfra: the check after the change failed; previous config restored and live again' >&2; exit 1; }"
    )
    yield StringCommand("sh", "-c", q(script))


@operation(is_idempotent=False)
def arm_rollback(
    unit: str, paths: list[str], then: str, seconds: int = 120, backup_dir: str = DEFAULT_BACKUP_DIR
) -> Generator[Any, Any, None]:
    """
    Before a change that could cut the controller off (sshd, the firewall) goes live: a systemd
    timer on the host that, in ``seconds``, puts back the previous versions of ``paths`` and runs
    ``then`` (making them live). ``confirm_reconnect`` cancels it once the controller has logged
    in anew; a host the controller cannot reach again heals itself.

    + unit: the timer's unit name (``hxinfra-rollback-<component>``)
    + paths: the config paths changed in this run (only run this with ``_if=<that op>.did_change``)
    + then: shell command that makes the restored files live
    """
    q = shlex.quote
    script = f"{restore_commands(paths, backup_dir)} ; {then}"
    yield StringCommand(
        "sh",
        "-c",
        q(
            f"systemctl stop {q(unit + '.timer')} 2>/dev/null; systemctl reset-failed {q(unit + '.service')} "
            f"{q(unit + '.timer')} 2>/dev/null; systemd-run --quiet --unit={q(unit)} --on-active={int(seconds)} "
            f"--timer-property=AccuracySec=1s /bin/sh -c {q(script)}"
        ),
    )


def _reconnect(state: Any, host: Any, attempts: int = 3) -> None:
    """A new login from the controller, as the next run would make (a fresh SSH connection with
    the host's own connection data), running one command."""
    import gevent

    connector = type(host.connector)
    if getattr(connector, "make_paramiko_kwargs", None) is None:  # not SSH (local, docker...): nothing to cut
        return
    error: Exception | None = None
    for _ in range(attempts):
        fresh = connector(state, host)
        try:
            fresh.connect()
            assert fresh.client is not None
            _, stdout, _ = fresh.client.exec_command("true", timeout=20)
            if stdout.channel.recv_exit_status() == 0:
                fresh.client.close()
                return
        except Exception as e:  # every failure is the same answer: no new login
            error = e
        gevent.sleep(2)
    raise OperationError(
        f"the controller cannot log in to {host.name} again after the change ({error}); "
        "the previous config comes back by itself when the rollback timer fires"
    )


@operation(is_idempotent=False)
def confirm_reconnect(unit: str) -> Generator[Any, Any, None]:
    """
    After ``arm_rollback`` and the change: the controller logs in anew (a fresh SSH connection),
    and only then is the rollback timer cancelled. When it cannot, the operation fails and the
    timer restores the previous config.
    """
    from pyinfra.api import FunctionCommand

    yield FunctionCommand(_reconnect, (), {})
    q = shlex.quote
    timer = q(unit + ".timer")
    yield StringCommand(
        "sh",
        "-c",
        q(  # a login that only worked because the timer had already fired is no success
            f"if systemctl is-active --quiet {timer}; then systemctl stop {timer}; systemctl reset-failed "
            f"{q(unit + '.service')} {timer} 2>/dev/null || true; else echo 'hxinfra: the rollback timer had fired: "
            "the previous config is back' >&2; exit 1; fi"
        ),
    )
