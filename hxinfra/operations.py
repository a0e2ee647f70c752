"""Generic pyinfra operations of the engine.

``config_set`` manages a *set* of configuration paths (whole files, symlinks, paths that
must not exist) as one transaction: it backs up what it is about to change, writes the new
state, runs the service's own validator (``nginx -t``, ``sshd -t``...) and, when the
validator fails, restores every path exactly as it was and fails the host. The running
service therefore never sees a configuration that does not validate, and a reload guarded
by ``_if=op.did_change`` only follows a validated change.

It also prints a real unified diff (``---``/``+++`` headers) of every file it would change
when pyinfra runs with ``--diff``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
import time
import uuid
from collections.abc import Generator, Iterable, Sequence
from datetime import UTC
from io import BytesIO, StringIO
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FactBase, FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.exceptions import OperationError, OperationValueError
from pyinfra.facts.files import FileContents
from typing_extensions import override  # typing.override is 3.12+

from hxinfra import batch, drift
from hxinfra.desired import ConfigItem, ManagedFile, ManagedLink
from hxinfra.validate import CONTROL
from hxinfra.vault import MASK, redact

DEFAULT_BACKUP_DIR = "/var/backups/hxinfra"
STAGE_SUFFIX = ".hxinfra-new"
# Beside each kept previous version: the run that replaced it, or a note that the path did not exist.
RUN_STAMP, ABSENT = ".hxinfra-run", ".hxinfra-absent"
PART = ".hxinfra-part"  # a kept version being written (see keep_previous_commands)
# One id per controller run, the same on every host and operation; sorts by time.
RUN_ID = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def unified_diff(path: str, old: str | None, new: str | None) -> list[str]:
    """A unified diff with ``---``/``+++`` headers (``/dev/null`` for a missing side)."""
    a = [] if old is None else old.splitlines(keepends=True)
    b = [] if new is None else new.splitlines(keepends=True)
    lines = difflib.unified_diff(
        a, b, fromfile="/dev/null" if old is None else f"a{path}", tofile="/dev/null" if new is None else f"b{path}"
    )
    return [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]


def _plan(items: Sequence[ConfigItem], states: dict[str, dict[str, Any]]) -> list[tuple[ConfigItem, str]]:
    """Which items differ from the host, and how: content | meta | link | absent."""
    changes: list[tuple[ConfigItem, str]] = []
    for item in items:
        state = states.get(item.path, {"kind": "N"})
        if isinstance(item, ManagedFile):
            if state["kind"] != "F" or state["sha256"] != _sha256(item.content):
                changes.append((item, "content"))
            elif (state["mode"], state["user"], state["group"]) != (int(item.mode, 8), item.user, item.group):
                changes.append((item, "meta"))
        elif isinstance(item, ManagedLink):
            if state["kind"] != "L" or state["target"] != item.target:
                changes.append((item, "link"))
        elif state["kind"] != "N":
            changes.append((item, "absent"))
    return changes


def _read_private(path: str) -> str | None:
    """The current content of a private file, for the diff, without exposing it on the way.

    Not a fact: pyinfra prints fact output at ``-vvv``. Not pyinfra's sudo download either: it
    copies the file to a world-readable temp file. Under sudo the file is copied 0600 to the login
    user (``$SUDO_UID``), fetched over SFTP and removed.
    """
    args = dict(host.current_op_global_arguments or {})
    connector_args: dict[str, Any] = {k: v for k, v in args.items() if k in CONNECTOR_ARGUMENT_KEYS}
    buf = BytesIO()
    if args.get("_sudo") or args.get("_su_user"):
        temp = host.get_temp_filename(f"hxinfra-read-{uuid.uuid4()}")
        q = shlex.quote
        copy = f'umask 077 && install -m 600 -o "${{SUDO_UID:-0}}" -g "${{SUDO_GID:-0}}" {q(path)} {q(temp)}'
        ok, _ = host.run_shell_command(StringCommand("sh", "-c", q(copy)), **connector_args)
        if not ok:
            return None
        try:
            host.get_file(temp, buf)  # no sudo: plain SFTP as the login user, no second copy
        finally:
            host.run_shell_command(StringCommand("rm", "-f", QuoteString(temp)))
    elif not host.get_file(path, buf, **connector_args):
        return None
    return buf.getvalue().decode("utf-8", "replace")


# "key = value", "key: value", "key value": the key (and separator) of a config line
_KEY = re.compile(r"^(\s*[^\s=:]+(?:\s*[=:]\s*|\s+))(\S.*?)(\s*)$")


def mask_removed_values(lines: list[str]) -> list[str]:
    """In a private file's diff, show the keys of removed lines and mask their values.

    The new content's secrets are known (and redacted); the host's *old* ones (before a
    rotation) are not, so every value on a removed line of a private file is ``********``,
    whatever its length, while the key stays readable to say *what* changed. A line without a
    key is masked whole.
    """
    out = []
    for line in lines:
        if line.startswith("-") and not line.startswith("---"):
            body = line[1:].rstrip("\n")
            m = _KEY.match(body)
            masked = f"{m.group(1)}{MASK}" if m else (MASK if body.strip() else body)
            line = f"-{masked}\n" if line.endswith("\n") else f"-{masked}"
        out.append(line)
    return out


def _note(kind: str, name: str, detail: str, diff: Sequence[str] = ()) -> None:
    """A finding of the running operation (see :mod:`hxinfra.drift`). An operation under ``_if``
    (a handler: restart after a change) is judged when it runs: in a check its condition is not
    known, and what would trigger it is a finding of its own."""
    arguments: Any = host.current_op_global_arguments or {}
    conditional = bool(arguments.get("_if"))
    if not conditional or state.is_executing:
        drift.note(host.name, kind, name, detail, diff)


CHANGE_WORDS = {"content": "content", "meta": "owner/mode", "link": "link", "absent": "present, wanted absent"}


def _diff(item: ConfigItem, change: str, state: dict[str, Any]) -> tuple[str, str, list[str]]:
    """What a change of ``item`` is: (what differs, a headline, its masked diff lines): a private
    file's removed values are masked, a sensitive file's lines hidden, every line redacted."""
    if isinstance(item, ManagedFile) and change == "content":
        old = None
        if state.get("kind") == "F" and item.private:
            old = _read_private(item.path)
        elif state.get("kind") == "F":
            old_lines = host.get_fact(FileContents, path=item.path) or []
            old = "".join(f"{line}\n" for line in old_lines)
        verb = "create" if old is None else "modify"
        lines = unified_diff(item.path, old, item.content)
        if item.private:
            lines = mask_removed_values(lines)
        if item.sensitive:
            changed = sum(1 for line in lines[2:] if line[:1] in "+-")
            lines = [*lines[:2], f"@@ contents hidden: sensitive file, {changed} line(s) differ @@\n"]
        what = "missing" if old is None else "content"
        return what, f"Will {verb} {item.path}", [redact(line.rstrip(chr(10))) for line in lines]
    if isinstance(item, ManagedFile):
        was = f"{state['user']}:{state['group']} {state['mode']:04o}"
        return (
            f"owner/mode {was}, wanted {item.user}:{item.group} {item.mode}",
            f"Will set {item.path} to {item.user}:{item.group} {item.mode} (was {was})",
            [],
        )
    if isinstance(item, ManagedLink):
        return f"link, wanted -> {item.target}", f"Will link {item.path} -> {item.target}", []
    return "present, wanted absent", f"Will remove {item.path}", []


def _log_diff(item: ConfigItem, change: str, state: dict[str, Any]) -> tuple[str, list[str]]:
    """Print a change's diff (``--diff``); returns what differs and the lines, for :mod:`hxinfra.drift`."""
    what, headline, lines = _diff(item, change, state)
    logger.info(f"{host.print_prefix}{headline}")
    for line in lines:
        logger.info(f"    {line}")
    return what, lines


def _check_items(items: Sequence[ConfigItem]) -> None:
    seen = set()
    for item in items:
        if not item.path.startswith("/") or CONTROL.search(item.path) or "/../" in f"{item.path}/":
            raise OperationValueError(f"config path must be absolute and plain (no '..'): {item.path!r}")
        if item.path in seen:
            raise OperationValueError(f"config path listed twice: {item.path}")
        seen.add(item.path)
        if isinstance(item, ManagedFile):
            int(item.mode, 8)


class StagedUpload(FileUploadCommand):
    """An upload to a staging file that, when it fails (a full disk, a lost link), removes what it
    wrote: no truncated ``.hxinfra-new`` file is left beside the path, and the message says why."""

    @override
    def execute(self, state: Any, host: Any, connector_arguments: Any) -> Any:
        error: OSError | None = None
        try:
            ok = super().execute(state, host, connector_arguments)
        except OSError as e:
            ok, error = False, e
        if ok:
            return ok
        removed = [str(self.dest)] + ([self.remote_temp_filename] if self.remote_temp_filename else [])
        args = {k: v for k, v in connector_arguments.items() if k in CONNECTOR_ARGUMENT_KEYS}
        space = ""
        try:
            host.run_shell_command(StringCommand("rm", "-f", *(QuoteString(p) for p in removed)), **args)
            parent = str(self.dest).rsplit("/", 1)[0] or "/"
            status, output = host.run_shell_command(
                StringCommand("df", "-Pk", QuoteString(parent)), **{k: v for k, v in args.items() if k != "_sudo"}
            )
            fields = output.stdout_lines[-1].split() if status and output.stdout_lines else []
            if len(fields) >= 6 and fields[3] == "0":
                space = f": no space left on {fields[5]}"
        except (OSError, EOFError):  # the link is gone too: nothing more can be done from here
            pass
        logger.error(f"{host.print_prefix}hxinfra: writing {self.dest} failed{space}; the partial copy was removed")
        if error is not None:
            raise error
        return False


def upload_commands(item: ManagedFile, temp: str | None = None) -> list[Any]:
    """Commands that put ``item`` in place through a staging file beside it.

    The staging file is created 0600 before any byte is written. For a private file, ``temp``
    is the path pyinfra uploads through when it must (``_sudo``: SFTP as the login user, then
    ``cp``): it is created 0600 *as the login user* first, so SFTP only ever writes into a
    file nobody else can read, and removed afterwards in every case.
    """
    q = shlex.quote
    stage = item.path + STAGE_SUFFIX
    parent = item.path.rsplit("/", 1)[0] or "/"
    cmds: list[Any] = []
    if temp:
        cmds.append(
            StringCommand("sh", "-c", q(f"umask 077 && rm -f {q(temp)} && (set -C; : > {q(temp)})"), _sudo=False)
        )
    cmds.append(
        StringCommand(
            "sh",
            "-c",
            q(f"mkdir -p {q(parent)} && umask 077 && : > {q(stage)} || {{ rc=$?; rm -f {q(stage)}; exit $rc; }}"),
        )
    )
    cmds.append(StagedUpload(StringIO(item.content), stage, remote_temp_filename=temp))
    if temp:
        cmds.append(StringCommand("rm", "-f", QuoteString(temp), _sudo=False))
    # a failed chown/chmod (unknown group...) removes the staged copy: no secret is left beside the file
    cmds.append(
        StringCommand(
            "sh",
            "-c",
            q(
                f"chown {q(item.user)}:{q(item.group)} {q(stage)} && chmod {mode_of(item)} {q(stage)} "
                f"&& mv -f {q(stage)} {q(item.path)} || {{ rc=$?; rm -f {q(stage)}; exit $rc; }}"
            ),
        )
    )
    return cmds


def mode_of(item: ManagedFile) -> str:
    """The file's mode as four octal digits (checked: nothing else reaches ``chmod``)."""
    return f"{int(item.mode, 8):04o}"


# The line of a validator's output that says why: the first that reads as an error (nginx's
# [emerg], psql's "error:", sshd's message), else the last one not indented (not a hint line).
REASON_AWK = (
    '{ s = tolower($0) } s ~ /error|emerg|fatal|invalid|fail|denied|refused/ && f == "" { f = $0 } '
    '/^[^ \t]/ { l = $0 } END { print (f != "" ? f : l) }'
)


def keep_previous_commands(backups: dict[str, str], run_id: str) -> str:
    """One shell script that keeps the previous version of each path (``path -> kept copy``).

    Every kept copy, "was absent" note and run stamp is first written beside its final name
    (``.hxinfra-part``), and only when all of them are complete are they renamed into place. A
    failure half-way (a full disk) removes the parts and leaves the versions kept by the last run
    as they were: a truncated copy never takes the place of a good one, so ``restore --config``
    can always trust what it finds.
    """
    q = shlex.quote
    prepare, commit, parts = [], [], []
    for path, kept in backups.items():
        part, absent, stamp = kept + PART, kept + ABSENT + PART, kept + RUN_STAMP + PART
        parts += [part, absent, stamp]
        parent = kept.rsplit("/", 1)[0]
        prepare.append(
            f"mkdir -p {q(parent)} && rm -f {q(part)} {q(absent)} {q(stamp)} && "
            f"{{ if [ -e {q(path)} ] || [ -L {q(path)} ]; then cp -a {q(path)} {q(part)}; else : > {q(absent)}; fi; }} "
            f"&& printf '%s\\n' {q(run_id)} > {q(stamp)}"
        )
        commit.append(
            f"{{ if [ -e {q(part)} ] || [ -L {q(part)} ]; then mv -f {q(part)} {q(kept)} && rm -f {q(kept + ABSENT)}; "
            f"else rm -f {q(kept)} && mv -f {q(absent)} {q(kept + ABSENT)}; fi; }} "
            f"&& mv -f {q(stamp)} {q(kept + RUN_STAMP)}"
        )
    cleanup = "rm -f " + " ".join(q(p) for p in parts)
    return (
        f"umask 077 && out=$( {{ {' && '.join(prepare)} ; }} 2>&1 ) || {{ rc=$?; {cleanup}; "
        'printf "%s\\n" "$out" >&2; printf "hxinfra: could not keep the previous versions, nothing was changed: '
        '%s\\n" "$(printf "%s\\n" "$out" | tail -n 1)" >&2; exit $rc; }; ' + " && ".join(commit)
    )


@operation()
def _config_set(  # the operation itself; config_set() below names its paths first
    items: Iterable[ConfigItem],
    validate: str | None = None,
    backup_dir: str = DEFAULT_BACKUP_DIR,
    validate_label: str | None = None,
) -> Generator[Any, Any, None]:
    """
    Converge a set of config paths as one validated transaction.

    + items: ``ManagedFile``/``ManagedLink``/``Absent`` entries
    + validate: shell command that must succeed with the new files in place; on failure
      every changed path is restored and the operation fails
    + backup_dir: where the previous version of each changed path is kept (0700)
    + validate_label: how a failure names the validator (default: the command itself)
    """
    items = list(items)
    if not items:  # an area with nothing to manage: no round trip to the host
        host.noop("no config paths to manage")
        return
    _check_items(items)
    found = batch.lookup("paths", [i.path for i in items])
    states = {path: st for path, st in found.items() if st is not None}
    odd = [i.path for i in items if states.get(i.path, {}).get("kind") in ("D", "O")]
    if odd:  # a directory (or device...) where a file belongs: never copied, never removed
        raise OperationError(f"not a regular file or symlink, refusing to replace it: {', '.join(odd)}")
    changes = _plan(items, states)
    if not changes:
        host.noop(f"{len(items)} config paths already as wanted")
        return

    for item, change in changes:
        if state.config.DIFF:
            what, lines = _log_diff(item, change, states.get(item.path, {}))
        elif drift.active():  # names only: no file is read for a diff nobody asked for
            missing = states.get(item.path, {}).get("kind", "N") == "N"
            what = "missing" if missing and change == "content" else CHANGE_WORDS[change]
            lines = []
        else:
            continue
        _note("path", item.path, what, lines)

    q = shlex.quote
    backups = {item.path: f"{backup_dir}{item.path}" for item, _ in changes}
    yield StringCommand("sh", "-c", q(keep_previous_commands(backups, RUN_ID)))

    for item, change in changes:
        if isinstance(item, ManagedFile) and change == "content":
            # an unpredictable temp name for every upload under sudo, not pyinfra's sha1 of the path
            yield from upload_commands(item, host.get_temp_filename(f"hxinfra-{uuid.uuid4()}"))
        elif isinstance(item, ManagedFile):
            owner = f"{item.user}:{item.group}"
            yield StringCommand(
                "sh", "-c", q(f"chown {q(owner)} {q(item.path)} && chmod {mode_of(item)} {q(item.path)}")
            )
        elif isinstance(item, ManagedLink):
            parent = item.path.rsplit("/", 1)[0] or "/"
            yield StringCommand("sh", "-c", q(f"mkdir -p {q(parent)} && ln -sfn {q(item.target)} {q(item.path)}"))
        else:
            yield StringCommand("rm", "-f", QuoteString(item.path))

    if validate:
        label = validate_label or validate
        restore = " ; ".join(
            f"rm -f {q(path)} ; if [ -e {q(b)} ] || [ -L {q(b)} ]; then mv -f {q(b)} {q(path)}; fi ; "
            f"rm -f {q(b + ABSENT)} {q(b + RUN_STAMP)}"
            for path, b in backups.items()
        )
        script = (
            # the braces: a validator that is a list (a && b || c) has all its output captured, not its last part's
            f"out=$( {{ {validate} ; }} 2>&1 ) || {{ rc=$?; {restore} ; "
            f'printf "%s\\n" "$out" >&2; '
            f"printf 'hxinfra: validation failed (%s, rc=%s), previous config restored: %s\\n' {q(label)} \"$rc\" "
            f'"$(printf "%s\\n" "$out" | awk {q(REASON_AWK)})" >&2; '
            "exit 1; }"
        )
        yield StringCommand("sh", "-c", q(script))


def config_set(items: Iterable[ConfigItem], **kwargs: Any) -> Any:
    """Converge a set of config paths as one validated transaction (see the operation above).

    The paths are named to :mod:`hxinfra.batch` now, as the deploy code runs: the first config
    set to run on a host then reads every path of the run in one command.
    """
    items = list(items)
    batch.want("paths", (p for i in items if isinstance(p := getattr(i, "path", None), str)))
    return _config_set(items=items, **kwargs)


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
        _note("service", unit, "not running" if running else "running, wanted stopped")
    if enabled is not None and enabled != is_enabled:
        _note("service", f"{unit} at boot", "not enabled" if enabled else "enabled, wanted disabled")
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
            _note("package", name, "not installed")
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
        raise OperationError(f"{path} exists and is not a directory")
    if kind == "D" and (found["mode"], found["user"], found["group"]) == (want_mode, user, group):
        host.noop(f"directory {path} is as wanted")
        return
    _note("directory", path, "missing" if kind == "N" else "owner/mode")
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
        _note("account", user, "missing" if found is None else "home/shell")
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


# Run on the host with its own python3 (a Debian base has no curl): GET url until it answers 200.
_PROBE = """\
import ssl, subprocess, sys, time, urllib.request
url, timeout, cafile, unit = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile or None)
# a host probing itself on loopback: the chain is verified, the name (not its loopback) is not
ctx.check_hostname = not url.startswith("https://127.0.0.1:")
end, err = time.monotonic() + timeout, "no answer"
while time.monotonic() < end:
    if unit and subprocess.call(["systemctl", "is-active", "--quiet", unit]) != 0:
        err = unit + " is not running"
        break
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            if r.status == 200:
                sys.exit(0)
            err = "HTTP %d" % r.status
    except Exception as e:
        err = str(e)
    time.sleep(1)
print("%s: not ready after %ss: %s" % (url, sys.argv[2], err), file=sys.stderr)
sys.exit(1)
"""


def probe_command(url: str, timeout: int = 60, cafile: str = "", unit: str = "") -> str:
    """A shell command that waits for ``url`` to answer 200 (and gives up as soon as ``unit``
    stops running); on failure it prints the unit's last log lines (why it did not come up) and
    fails. Every value is quoted."""
    q = shlex.quote
    cmd = f"python3 -c {q(_PROBE)} {q(url)} {int(timeout)} {q(cafile)} {q(unit)}"
    if unit:
        cmd += f" || {{ journalctl -u {q(unit)} -n 30 --no-pager -o cat >&2; exit 1; }}"
    return cmd


@operation(is_idempotent=False)
def http_ready(url: str, timeout: int = 60, cafile: str = "", unit: str = "") -> Generator[Any, Any, None]:
    """
    Wait until ``url`` answers 200 from the host itself; fail with the unit's last log lines.

    + url: http(s) URL, as the host reaches it
    + timeout: seconds to wait
    + cafile: CA bundle for https ("" = the system's)
    + unit: systemd unit whose journal explains a failure
    """
    yield StringCommand("sh", "-c", shlex.quote(probe_command(url, timeout, cafile, unit)))


class _PythonTarget(FactBase[str]):
    """The host's python3 version and machine, e.g. ``3.11.2 x86_64``."""

    @override
    def command(self) -> str:
        return "python3 -c 'import platform; print(platform.python_version(), platform.machine())'"

    @override
    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""


PIP_ENV = re.compile(r"(HTTPS?_PROXY|NO_PROXY|PIP_[A-Z_]+)")


@operation()
def venv_install(
    venv: str,
    requirements: list[str],
    wheelhouse: bool = True,
    pip_env: dict[str, str] | None = None,
) -> Generator[Any, Any, None]:
    """
    Install pinned ``requirements`` into a venv, once: ``<venv>/.hxinfra-requirements`` records
    them, so a re-run does nothing and a new pin installs again (the caller restarts on change).

    + venv: the venv's directory (made with ``python3 -m venv`` when missing)
    + requirements: e.g. ``["litellm[proxy]==1.106.2"]``
    + wheelhouse: build the wheelhouse on the controller for the host's Python (cached) and upload
      it: hosts need no route to an index; False: the host's pip reaches the index itself
    + pip_env: environment of the host's pip when not using a wheelhouse (``HTTPS_PROXY``,
      ``PIP_INDEX_URL``, ``PIP_CERT``...)
    """
    from hxinfra.wheelhouse import Target, build

    q = shlex.quote
    wanted = " ".join(requirements)
    bad = [k for k in (pip_env or {}) if not PIP_ENV.fullmatch(k)]
    if bad:
        raise OperationValueError(f"pip_env: not a proxy or PIP_ variable: {', '.join(bad)}")
    marker = f"{venv}/.hxinfra-requirements"
    current = host.get_fact(FileContents, path=marker)
    if current and " ".join(current).strip() == wanted:
        host.noop(f"{wanted} already installed in {venv}")
        return
    pip = f"{q(venv)}/bin/pip install --disable-pip-version-check --no-input --quiet"
    setup = f"[ -x {q(venv)}/bin/pip ] || python3 -m venv {q(venv)}"
    reqs = " ".join(q(r) for r in requirements)
    record = f"printf '%s\\n' {q(wanted)} > {q(marker)}"
    if wheelhouse:
        version, _, machine = host.get_fact(_PythonTarget).partition(" ")
        if not version:
            raise OperationError("python3 does not run on the host: cannot build a wheelhouse for it")
        tar = build(list(requirements), Target(version, machine or "x86_64"))
        remote = host.get_temp_filename(f"hxinfra-wheels-{uuid.uuid4()}")
        yield FileUploadCommand(str(tar), remote)
        script = (
            f"set -e; {setup}; d=$(mktemp -d); trap 'rm -rf \"$d\" {q(remote)}' EXIT; "
            f'tar -xf {q(remote)} -C "$d"; {pip} --no-index --find-links "$d" {reqs}; {record}'
        )
    else:
        env = " ".join(f"{k}={q(v)}" for k, v in sorted((pip_env or {}).items()) if v)
        script = f"set -e; {setup}; {env} {pip} {reqs}; {record}"
    yield StringCommand("sh", "-c", q(script))


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


def undo_script(
    paths: Sequence[str], validate: str, apply: str, what: str, backup_dir: str = DEFAULT_BACKUP_DIR
) -> str:
    """A shell script that puts a component's config back to its previous deployed version.

    "Previous" is exact: among ``paths``, those the component's newest change replaced (the
    newest run stamp ``config_set`` left beside the kept versions); older kept versions belong
    to earlier runs and stay. Live and kept versions are exchanged, so running it again goes
    forward again. The result is checked by ``validate`` before ``apply`` makes it live; when
    the check fails, the exchange is undone and the script fails: the service keeps its config.
    """
    q = shlex.quote
    stamps = " ".join(q(backup_dir + p + RUN_STAMP) for p in paths)
    swaps = "\n".join(f"swap {q(p)} {q(backup_dir + p)}" for p in paths)
    return f"""set -u
umask 077
newest=$(cat {stamps} 2>/dev/null | sort | tail -n1)
[ -n "$newest" ] || {{ echo "hxinfra: no previous version of {what}'s config is kept on this host" >&2; exit 1; }}
swap() {{
  p=$1; b=$2
  [ "$(cat "$b{RUN_STAMP}" 2>/dev/null)" = "$newest" ] || return 0
  rm -f "$b.hxinfra-swap"
  if [ -e "$p" ] || [ -L "$p" ]; then cp -a "$p" "$b.hxinfra-swap"; fi
  rm -f "$p"
  if [ ! -e "$b{ABSENT}" ]; then cp -a "$b" "$p"; fi
  rm -f "$b" "$b{ABSENT}"
  if [ -e "$b.hxinfra-swap" ] || [ -L "$b.hxinfra-swap" ]; then mv -f "$b.hxinfra-swap" "$b"; else : > "$b{ABSENT}"; fi
  echo "$p"
}}
swapped=$( {swaps.replace(chr(10), " ; ")} )
if ! out=$( {{ {validate} ; }} 2>&1 ); then
  {swaps.replace(chr(10), " >/dev/null ; ")} >/dev/null
  printf '%s\n' "$out" >&2
  echo "hxinfra: the previous version of {what}'s config does not validate; the current one stays" >&2
  exit 1
fi
{apply} || {{ echo "hxinfra: {what}: the previous config is in place but could not be made live" >&2; exit 1; }}
printf 'restored %s\n' $swapped
"""


def restore_commands(paths: Sequence[str], backup_dir: str = DEFAULT_BACKUP_DIR) -> str:
    """Shell that puts back the versions ``config_set`` kept of ``paths`` (removing a path that
    did not exist before)."""
    q = shlex.quote
    return " ; ".join(
        f"if [ -e {q(backup_dir + p + ABSENT)} ]; then rm -f {q(p)}; "
        f"elif [ -e {q(backup_dir + p)} ] || [ -L {q(backup_dir + p)} ]; then cp -a {q(backup_dir + p)} {q(p)}; fi"
        for p in paths
    )


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
