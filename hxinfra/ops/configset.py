"""``config_set``: a *set* of configuration paths (whole files, symlinks, paths that must not exist)
converged as one transaction.

It keeps what it is about to change (:mod:`hxinfra.ops.kept`), writes the new state through 0600
staging files, runs the service's own validator (``nginx -t``, ``sshd -t``...) and, when the
validator fails, restores every path exactly as it was and fails the host. The running service
therefore never sees a configuration that does not validate, and a reload guarded by
``_if=op.did_change`` only follows a validated change. With ``--diff`` it prints a real unified
diff (``---``/``+++`` headers) of every file it would change, private values masked.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shlex
import uuid
from collections.abc import Generator, Iterable, Sequence
from io import BytesIO, StringIO
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.exceptions import OperationValueError
from pyinfra.facts.files import FileContents
from typing_extensions import override  # typing.override is 3.12+

from hxinfra import batch, drift
from hxinfra.desired import ConfigItem, ManagedFile, ManagedLink
from hxinfra.ops.kept import ABSENT, DEFAULT_BACKUP_DIR, RUN_ID, RUN_STAMP, keep_previous_commands
from hxinfra.ops.refusal import refuse
from hxinfra.secrets import MASK, redact
from hxinfra.validate import CONTROL

STAGE_SUFFIX = ".hxinfra-new"


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
        yield from refuse(f"not a regular file or symlink, refusing to replace it: {', '.join(odd)}")
        return
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
        drift.note_op("path", item.path, what, lines)

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
