"""systemd units, apt packages, directories and system accounts, with their facts read in one round
trip per host (:mod:`hxinfra.batch`): each ``x()`` names what it will look at, then calls the
operation ``_x()``. And ``barrier``, the step every host takes at the same point."""

from __future__ import annotations

import re
import shlex
from collections.abc import Generator
from datetime import UTC
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationValueError

from hxinfra import batch, drift
from hxinfra.ops.refusal import refuse


def _unit_name(service: str) -> str:
    """systemd's own rule, as pyinfra applies it: a bare name is a ``.service``."""
    suffixes = (
        ".service",
        ".socket",
        ".device",
        ".mount",
        ".automount",
        ".swap",
        ".target",
        ".path",
        ".timer",
        ".slice",
        ".scope",
    )
    return service if service.endswith(suffixes) else f"{service}.service"


@operation()
def _service(  # the operation itself; service() below names its unit first
    service: str,
    running: bool | None = None,
    enabled: bool | None = None,
    restarted: bool = False,
    reloaded: bool = False,
    daemon_reload: bool = False,
) -> Generator[Any, Any, None]:
    """
    Manage a systemd unit as ``systemd.service`` does, from one batched read of the run's units.

    + service: unit name (a bare name is a ``.service``)
    + running: started when not running / stopped when running
    + enabled: enabled / disabled at boot
    + restarted, reloaded: restart / reload, only when it is running (pyinfra's rule)
    + daemon_reload: ``systemctl daemon-reload`` first
    """
    unit = _unit_name(service)
    info = batch.lookup("units", [unit])[unit] or {}  # read before this operation runs anything
    if daemon_reload:
        yield StringCommand("systemctl", "daemon-reload")
    is_running = info.get("sub") in ("running", "waiting", "exited", "listening", "mounted")
    is_enabled = info.get("file") in ("enabled", "static")
    if running is not None and running != is_running:
        drift.note_op("service", unit, "not running" if running else "running, wanted stopped")
    if enabled is not None and enabled != is_enabled:
        drift.note_op("service", f"{unit} at boot", "not enabled" if enabled else "enabled, wanted disabled")
    if running is True and not is_running:
        yield StringCommand("systemctl", "start", QuoteString(unit))
    elif running is False and is_running:
        yield StringCommand("systemctl", "stop", QuoteString(unit))
    if restarted and is_running:
        yield StringCommand("systemctl", "restart", QuoteString(unit))
    if reloaded and is_running:
        yield StringCommand("systemctl", "reload", QuoteString(unit))
    if enabled is True and not is_enabled:
        yield StringCommand("systemctl", "enable", QuoteString(unit))
    elif enabled is False and is_enabled:
        yield StringCommand("systemctl", "disable", QuoteString(unit))
    if (
        not (daemon_reload or restarted or reloaded)
        and (running is None or running == is_running)
        and (enabled is None or enabled == is_enabled)
    ):
        host.noop(f"{unit} is as wanted")


def service(service: str, **kwargs: Any) -> Any:
    """Manage a systemd unit (see the operation above); its unit is named to :mod:`hxinfra.batch`
    now, so the first unit operation to run on a host reads every unit of the run at once."""
    batch.want("units", [_unit_name(service)])
    return _service(service=service, **kwargs)


@operation()
def _packages(  # the operation itself; packages() below names its packages first
    packages: list[str],
    update: bool = False,
    cache_time: int | None = None,
    no_recommends: bool = False,
) -> Generator[Any, Any, None]:
    """
    Install Debian packages: nothing is read or run when all are installed (one batched
    ``dpkg-query`` of the run's packages), else pyinfra's ``apt.packages`` does the work.

    + packages: package names (``name=version`` pins go straight to ``apt.packages``)
    + update, cache_time: refresh the package lists before an install (when older than ``cache_time``
      seconds), as ``apt.packages`` does
    + no_recommends: install only what the packages depend on (a small agent whose recommended
      companions would pull in a language runtime)
    """
    from pyinfra.operations import apt

    names = [p for p in packages if "=" not in p]
    installed = batch.lookup("packages", names) if names else {}
    if len(names) == len(packages) and all(installed.get(n) for n in names):
        host.noop(f"{len(names)} package(s) installed")
        return
    for name in names:
        if not installed.get(name):
            drift.note_op("package", name, "not installed")
    if update:
        yield from _refresh_lists(cache_time)
    yield from apt.packages._inner(packages=packages, no_recommends=no_recommends)


def _refresh_lists(cache_time: int | None) -> Generator[Any, Any, None]:
    """``apt-get update`` unless the lists are younger than ``cache_time`` seconds, failing when a
    list could not be fetched.

    Plain ``apt-get update`` exits 0 when its proxy or mirror does not answer, and pyinfra's
    ``apt.update`` then stamps the lists as fresh: the install fails with "Unable to locate
    package", and so does every run for a day. Here a failed fetch fails the operation with apt's
    own line (which names the proxy or mirror), and only a complete refresh is stamped.
    """
    from datetime import datetime, timedelta

    from pyinfra.facts.files import File
    from pyinfra.facts.server import Date
    from pyinfra.operations.apt import APT_UPDATE_FILENAME

    if cache_time:
        info = host.get_fact(File, path=APT_UPDATE_FILENAME)
        mtime = info.get("mtime") if info else None
        if mtime is not None:
            # File's mtime is naive (the host's clock read as UTC): compare the host's clock the same way
            now = datetime.fromtimestamp(host.get_fact(Date).timestamp(), UTC).replace(tzinfo=None)
            if mtime > now - timedelta(seconds=cache_time):
                return
    yield StringCommand("sh", "-c", shlex.quote(refresh_lists_script(APT_UPDATE_FILENAME if cache_time else None)))


def refresh_lists_script(stamp: str | None) -> str:
    """The shell script of :func:`_refresh_lists`: ``apt-get update`` that fails when any list
    could not be fetched, ends with apt's own first error line (it names the proxy or mirror), and
    touches ``stamp`` only after a complete refresh."""
    script = (
        "out=$(apt-get update -o APT::Update::Error-Mode=any 2>&1) || { rc=$?; printf '%s\\n' \"$out\" >&2; "
        "printf 'hxinfra: the package lists could not be refreshed, nothing was installed "
        "(check the apt proxy or mirror in /etc/apt): %s\\n' "
        "\"$(printf '%s\\n' \"$out\" | grep -E '^E: Failed to fetch|^E:' | head -n 1)\" >&2; exit $rc; }"
    )
    return script + (f" && touch {shlex.quote(stamp)}" if stamp else "")


@operation()
def package_lists(cache_time: int | None = None) -> Generator[Any, Any, None]:
    """
    Refresh the package lists (see :func:`_refresh_lists`: a fetch that fails fails the run).

    + cache_time: do nothing when the lists were refreshed less than this many seconds ago
    """
    yield from _refresh_lists(cache_time)


def packages(packages: list[str], **kwargs: Any) -> Any:
    """Install Debian packages (see the operation above); they are named to :mod:`hxinfra.batch`
    now, so the first package operation to run on a host reads every package of the run at once."""
    batch.want("packages", [p for p in packages if "=" not in p])
    return _packages(packages=list(packages), **kwargs)


@operation()
def _directory(path: str, user: str, group: str, mode: str) -> Generator[Any, Any, None]:
    """
    A directory with this owner and mode (created with its parents when missing), read with the
    run's other paths in one batched command.

    + path: absolute path
    + user, group: owner
    + mode: octal mode, e.g. ``0700``
    """
    want_mode = int(mode, 8)
    found = batch.lookup("paths", [path])[path] or {}
    kind = found.get("kind", "N")
    if kind not in ("D", "N"):
        yield from refuse(f"{path} exists and is not a directory")
        return
    if kind == "D" and (found["mode"], found["user"], found["group"]) == (want_mode, user, group):
        host.noop(f"directory {path} is as wanted")
        return
    drift.note_op("directory", path, "missing" if kind == "N" else "owner/mode")
    q = shlex.quote
    yield StringCommand(
        "sh",
        "-c",
        q(f"mkdir -p {q(path)} && chown {q(f'{user}:{group}')} {q(path)} && chmod {want_mode:04o} {q(path)}"),
    )


def directory(path: str, user: str, group: str, mode: str, **kwargs: Any) -> Any:
    """A directory with this owner and mode (see the operation above); its path is named to
    :mod:`hxinfra.batch` now, to be read with the run's other paths."""
    batch.want("paths", [path])
    return _directory(path=path, user=user, group=group, mode=mode, **kwargs)


@operation()
def _system_user(user: str, home: str, shell: str = "/usr/sbin/nologin") -> Generator[Any, Any, None]:
    """
    A system account for a service (its own group, no home created), read with the run's other
    accounts in one batched ``getent``.

    + user: account name
    + home: its home directory (not created)
    + shell: its login shell
    """
    found = batch.lookup("accounts", [user])[user]
    q = shlex.quote
    if found is None or (found["home"], found["shell"]) != (home, shell):
        drift.note_op("account", user, "missing" if found is None else "home/shell")
    if found is None:  # a group of the same name (left by an earlier account) is reused, not an error
        yield StringCommand(
            "sh",
            "-c",
            q(
                f"if getent group {q(user)} >/dev/null; then g='-g {user}'; else g=-U; fi; "
                f"useradd -r -M -d {q(home)} -s {q(shell)} $g {q(user)}"
            ),
        )
    elif (found["home"], found["shell"]) != (home, shell):
        yield StringCommand("usermod", "-d", QuoteString(home), "-s", QuoteString(shell), QuoteString(user))
    else:
        host.noop(f"account {user} is as wanted")


def system_user(user: str, home: str, shell: str = "/usr/sbin/nologin", **kwargs: Any) -> Any:
    """A system account for a service (see the operation above); named to :mod:`hxinfra.batch` now."""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise OperationValueError(f"not an account name: {user!r}")
    batch.want("accounts", [user])
    return _system_user(user=user, home=home, shell=shell, **kwargs)


@operation(is_idempotent=True)
def barrier() -> Generator[Any, Any, None]:
    """
    A step every host takes at the same point: no command, but no operation called after it
    (on any host) runs before every operation called before it (on every host) has run.

    pyinfra orders each host's operations as called, and the hosts' sequences only where they
    share an operation; without a shared step, a web host's pool switch may run while an
    application server is still starting the release it switches to.
    """
    host.noop("every host is through the previous step")
    return
    yield  # a generator that yields nothing
