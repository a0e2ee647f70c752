"""The run history: every deploy, drift, health, audit, backup and restore run, in SQLite.

Operators ask what the last runs did, who ran them and what changed. Each run is written once, at
its end (a failure included), with who ran it, the environment, limit and tags, the repository's
commit (and whether the tree was dirty), each host's result and the names of what changed or
drifted (paths, packages, units: names only, never contents).

The history must never stand in the way of a run: a database that is locked, unreadable, not a
database or newer than this hxinfra is reported as a warning and the run goes on. The schema is
versioned (``PRAGMA user_version``) and migrated forward when the file is opened.

Where: ``$HXINFRA_STATE/history.sqlite3``, else ``$XDG_STATE_HOME/hxinfra`` or
``~/.local/state/hxinfra`` (0700 directory, 0600 file).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import getpass
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hxinfra.errors import HxError
from hxinfra.secrets import redact

STATE_ENV = "HXINFRA_STATE"
PROJECT_ENV = "HXINFRA_PROJECT_NAME"
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
FILE = "history.sqlite3"
LOCK_WAIT = 2.0  # seconds a writer waits for another one before it gives up (with a warning)

# Each step takes the schema from version i to i + 1; a new version appends a step, never edits one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        verb TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        env TEXT NOT NULL DEFAULT '',
        started REAL NOT NULL,
        ended REAL NOT NULL,
        user TEXT NOT NULL,
        controller TEXT NOT NULL,
        selection TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '',
        check_mode INTEGER NOT NULL DEFAULT 0,
        commit_id TEXT NOT NULL DEFAULT '',
        dirty INTEGER NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_env_started ON runs (env, started);
    CREATE TABLE run_hosts (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        status TEXT NOT NULL,
        changed INTEGER NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        cause TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, host)
    );
    CREATE INDEX run_hosts_host ON run_hosts (host);
    CREATE TABLE run_items (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX run_items_run ON run_items (run_id, host);
    """,
    # 2: the project a run belongs to ("" for the runs recorded before this version)
    """
    ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT '';
    CREATE INDEX runs_project_started ON runs (project, started);
    """,
    # 3: what each environment's watch left firing (hxinfra.watch: alerts on a change of state)
    """
    CREATE TABLE alerts (
        project TEXT NOT NULL,
        env TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        since REAL NOT NULL,
        PRIMARY KEY (project, env, key)
    );
    """,
)
VERSION = len(MIGRATIONS)


class HistoryError(HxError):
    """The history cannot be read or written, or names no project (a command that reads it
    fails with this, as one line; a run only warns)."""


def state_dir() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hxinfra"


def db_path() -> Path:
    return state_dir() / FILE


def private(path: Path) -> None:
    """The history's directory 0700 and its file 0600, made so or tightened (an older hxinfra or a
    umask left them readable); a symbolic link in place of either is refused, never followed."""
    for item in (path.parent, path):
        if item.is_symlink():
            raise HistoryError(f"{item} is a symbolic link; the run history is not kept through one")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.parent.stat().st_mode & 0o077:
        path.parent.chmod(0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm", "-journal"):  # sqlite's own files beside it
        extra = path.with_name(path.name + side)
        if extra.is_file() and not extra.is_symlink() and extra.stat().st_mode & 0o077:
            extra.chmod(0o600)


def connect(path: Path | None = None, create: bool = True) -> sqlite3.Connection:
    """The history database, migrated to this hxinfra's schema. Raises :class:`HistoryError`."""
    path = path or db_path()
    if not create and not path.exists():
        raise HistoryError(f"no run history yet ({path})")
    try:
        private(path)
        conn = sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level=None)
    except (OSError, sqlite3.Error) as e:
        raise HistoryError(f"cannot open the run history {path}: {e}") from None
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise HistoryError(
                f"the run history {path} has schema {version}, newer than this hxinfra's {VERSION}: upgrade hxinfra"
            )
        if version < VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {VERSION}")
            conn.execute("COMMIT")
    except sqlite3.Error as e:
        conn.close()
        raise HistoryError(f"cannot use the run history {path}: {e}") from None
    except HistoryError:
        conn.close()
        raise
    return conn


@dataclass
class HostResult:
    """One host's result in one run."""

    host: str
    status: str  # ok | changed | pending | drifted | failed | unreachable
    changed: int = 0
    ok: int = 0
    failed: int = 0
    cause: str = ""
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, detail): names only


@dataclass
class Run:
    """One run of a verb, as it is recorded."""

    verb: str
    env: str = ""
    target: str = ""  # the deploy (site, nginx...), the backup verb
    selection: str = ""  # the --limit patterns
    tags: str = ""
    check: bool = False
    started: float = field(default_factory=time.time)
    hosts: list[HostResult] = field(default_factory=list)
    outcome: str = ""  # set from the exit code when empty
    error: str = ""


def project_of(root: Path | None) -> str:
    """The project a run belongs to: ``HXINFRA_PROJECT_NAME``, else ``[tool.hxinfra] project`` in
    the project's pyproject.toml, else ``path:<its directory>``. A name is what several checkouts,
    controllers and CI shards of one repository share (their runs are one history); a checkout
    without one is a project of its own. "" outside any project."""
    name = os.environ.get(PROJECT_ENV, "").strip()
    where = PROJECT_ENV
    if not name and root is not None:
        import tomllib

        try:
            config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            config = {}
        tool = config.get("tool", {}).get("hxinfra", {})
        name = tool.get("project", "") if isinstance(tool, dict) else ""
        where = f"[tool.hxinfra] project in {root / 'pyproject.toml'}"
        if not isinstance(name, str):
            raise HistoryError(f"{where}: a name, got {type(name).__name__}")
        name = name.strip()
    if name:
        if not PROJECT_NAME.fullmatch(name):
            raise HistoryError(f"{where}: {name!r} is not a project name (letters, digits, . _ / -; 100 at most)")
        return name
    return f"path:{root.resolve()}" if root is not None else ""


def _repository(root: Path) -> tuple[str, bool]:
    """The commit checked out under ``root`` and whether the tree has changes ("", False outside git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return "", False
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "", False


def _user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {name})" if sudo and sudo != name else name


def outcome_of(run: Run, exit_code: int) -> str:
    if run.outcome:
        return run.outcome
    if run.error:
        return "error"
    if exit_code == 1 or any(h.status in ("failed", "unreachable") for h in run.hosts):
        return "failed"
    if any(h.status in ("drifted", "pending") for h in run.hosts):
        return "drift" if run.verb == "drift" else "pending"
    if any(h.status == "changed" for h in run.hosts):
        return "changed"
    return "ok"


@contextlib.contextmanager
def _writing(path: Path | None, what: str) -> Iterator[sqlite3.Connection]:
    """The history opened for one transaction (BEGIN IMMEDIATE: a writer waits for another),
    committed when the block ends, rolled back on an error, which is a :class:`HistoryError`."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise HistoryError(f"cannot write {what} ({path or db_path()}): {e}") from None
    finally:
        conn.close()


def write(run: Run, exit_code: int, root: Path, path: Path | None = None) -> int:
    """Record ``run``; its id. Raises :class:`HistoryError` (see :func:`record`, which does not)."""
    commit, dirty = _repository(root)
    project = project_of(root)
    with _writing(path, "the run history") as conn:
        cur = conn.execute(
            "INSERT INTO runs (verb, target, env, started, ended, user, controller, selection, tags, check_mode, "
            "commit_id, dirty, outcome, exit_code, error, project) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.verb,
                run.target,
                run.env,
                run.started,
                time.time(),
                _user(),
                socket.gethostname(),
                run.selection,
                run.tags,
                int(run.check),
                commit,
                int(dirty),
                outcome_of(run, exit_code),
                exit_code,
                redact(run.error)[:2000],
                project,
            ),
        )
        run_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT OR REPLACE INTO run_hosts (run_id, host, status, changed, ok, failed, cause) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, h.host, h.status, h.changed, h.ok, h.failed, redact(h.cause)[:500]) for h in run.hosts],
        )
        conn.executemany(
            "INSERT INTO run_items (run_id, host, kind, name, detail) VALUES (?, ?, ?, ?, ?)",
            [(run_id, h.host, k, redact(n), redact(d)) for h in run.hosts for k, n, d in h.items],
        )
        return run_id


def record(run: Run, exit_code: int, root: Path) -> int | None:
    """Record ``run``, or say on stderr why it could not be: never an error for the run itself."""
    try:
        return write(run, exit_code, root)
    except HistoryError as e:
        sys.stderr.write(f"hxinfra: warning: this run is not in the history: {e}\n")
        return None


# ------------------------------------------------------------------ the run being recorded
_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("hxinfra_history_run", default=None)


def current() -> Run | None:
    """The run a verb is recording (None outside :func:`recorded` commands, e.g. in tests of parts)."""
    return _current.get()


def set_hosts(hosts: Sequence[HostResult]) -> None:
    """The per-host results of the run being recorded (a no-op when nothing records)."""
    run = _current.get()
    if run is not None:
        run.hosts = list(hosts)


F = TypeVar("F", bound=Callable[..., Any])


def recorded(verb: str, target: Callable[[dict[str, Any]], str] | None = None) -> Callable[[F], F]:
    """Record every run of a click command: its options say the environment and selection, the
    command says its hosts' results with :func:`set_hosts`, its exit (``sys.exit``, an error)
    says the outcome. A usage error is not a run and is not recorded; ``HXINFRA_HISTORY=off``
    records nothing."""
    import click

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if os.environ.get("HXINFRA_HISTORY", "").lower() in ("off", "0", "no"):
                return func(*args, **kwargs)
            limit = kwargs.get("limit") or kwargs.get("pattern") or ""
            run = Run(
                verb,
                env=str(kwargs.get("env_name") or ""),
                target=target(kwargs) if target else "",
                selection=",".join(limit) if isinstance(limit, tuple | list) else str(limit),
                tags=",".join(kwargs.get("tags") or ()),
                check=bool(kwargs.get("check")),
            )
            token = _current.set(run)
            code = 0
            try:
                return func(*args, **kwargs)
            except click.UsageError:
                code = -1
                raise
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                raise
            except click.exceptions.Exit as e:
                code = e.exit_code
                raise
            except click.Abort:
                code, run.error = 1, "aborted"
                raise
            except Exception as e:
                code, run.error = 1, str(e) or type(e).__name__
                raise
            finally:
                _current.reset(token)
                if code >= 0:
                    from hxinfra.paths import project_root

                    record(run, code, project_root())

        return inner  # type: ignore[return-value]

    return wrap


# ------------------------------------------------------------------ reading it back
SINCE = re.compile(r"(?P<n>[0-9]+)(?P<unit>[smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``2w``: that long ago, as a timestamp."""
    m = SINCE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"--since {text!r}: a number and s, m, h, d or w (7d, 12h)")
    return time.time() - int(m["n"]) * UNITS[m["unit"]]


@contextlib.contextmanager
def _reading(path: Path | None) -> Iterator[sqlite3.Connection]:
    """The history opened to read (it must exist); a database error is a :class:`HistoryError`."""
    conn = connect(path, create=False)
    try:
        yield conn
    except sqlite3.Error as e:
        raise HistoryError(f"cannot read the run history: {e}") from None
    finally:
        conn.close()


def _row(cur: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}


def runs(
    env: str | None = None,
    host: str | None = None,
    since: float | None = None,
    limit: int = 100,
    path: Path | None = None,
    project: str | None = None,
) -> list[dict[str, Any]]:
    """Runs, newest first, each with its hosts' results (no items); none before the first run.
    ``project``: only that project's runs (None: every project's)."""
    if not (path or db_path()).exists():
        return []
    with _reading(path) as conn:
        where: list[str] = []
        args: list[Any] = []
        if project is not None:
            where.append("r.project = ?")
            args.append(project)
        if env:
            where.append("r.env = ?")
            args.append(env)
        if since is not None:
            where.append("r.started >= ?")
            args.append(since)
        if host:
            where.append("r.id IN (SELECT run_id FROM run_hosts WHERE host = ?)")
            args.append(host)
        # the clauses are this function's own constants; every value is a parameter
        sql = "SELECT r.* FROM runs r" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
        cur = conn.execute(sql + " ORDER BY r.started DESC, r.id DESC LIMIT ?", (*args, limit))
        out = [_row(cur, r) for r in cur.fetchall()]
        for r in out:
            hc = conn.execute("SELECT * FROM run_hosts WHERE run_id = ? ORDER BY host", (r["id"],))
            r["hosts"] = [_row(hc, h) for h in hc.fetchall()]
        return out


def firing(project: str, env: str, path: Path | None = None) -> list[dict[str, Any]]:
    """The conditions the last watch of ``env`` left firing (key, kind, host, summary, since)."""
    if not (path or db_path()).exists():
        return []
    with _reading(path) as conn:
        cur = conn.execute(
            "SELECT key, kind, host, summary, since FROM alerts WHERE project = ? AND env = ? ORDER BY key",
            (project, env),
        )
        return [_row(cur, r) for r in cur.fetchall()]


def set_firing(
    project: str, env: str, started: Sequence[tuple[str, str, str, str]], ended: Sequence[str], path: Path | None = None
) -> None:
    """Store a watch's news: ``started`` (key, kind, host, summary) now firing, ``ended`` keys gone.
    Raises :class:`HistoryError`."""
    with _writing(path, "the watch's alerts") as conn:
        now = time.time()
        conn.executemany(
            "INSERT OR REPLACE INTO alerts (project, env, key, kind, host, summary, since) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(project, env, k, kind, h, redact(s)[:500], now) for k, kind, h, s in started],
        )
        conn.executemany(
            "DELETE FROM alerts WHERE project = ? AND env = ? AND key = ?", [(project, env, k) for k in ended]
        )


def unnamed_runs(path: Path | None = None) -> int:
    """How many runs were recorded before runs named their project (shown with every project's)."""
    if not (path or db_path()).exists():
        return 0
    with _reading(path) as conn:
        return int(conn.execute("SELECT count(*) FROM runs WHERE project = ''").fetchone()[0])


def item_counts(path: Path | None = None) -> dict[tuple[int, str], int]:
    """How many things each (run, host) changed or found (none before the first run)."""
    if not (path or db_path()).exists():
        return {}
    with _reading(path) as conn:
        rows = conn.execute("SELECT run_id, host, count(*) FROM run_items GROUP BY run_id, host").fetchall()
        return {(int(r), str(h)): int(n) for r, h, n in rows}


def show(run_id: int, path: Path | None = None) -> dict[str, Any]:
    """One run, with every host's result and items."""
    with _reading(path) as conn:
        cur = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise HistoryError(f"no run {run_id} in the history")
        run = _row(cur, row)
        hc = conn.execute("SELECT * FROM run_hosts WHERE run_id = ? ORDER BY host", (run_id,))
        run["hosts"] = [_row(hc, h) for h in hc.fetchall()]
        for h in run["hosts"]:
            ic = conn.execute(
                "SELECT kind, name, detail FROM run_items WHERE run_id = ? AND host = ? ORDER BY rowid",
                (run_id, h["host"]),
            )
            h["items"] = [_row(ic, i) for i in ic.fetchall()]
        return run


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
