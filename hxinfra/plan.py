"""The offline plan: every file the deploys would write, for every host, without SSH.

Each component may give a pure ``plan(data, host_name)`` function (the same one its deploy uses)
returning its managed paths. The plan writes one file per host, ``DIR/<host>.plan``: a section per
managed path (its mode, owner, digest, link target or removal, then its exact lines), so a pull
request can show the diff of what it would change in every environment, and a fleet of thousands
of hosts is thousands of files, not hundreds of thousands. Secrets are never written: sensitive files
are replaced by a note, and every vault value is redacted (inline ``!vault`` values are not
even decrypted when no password is at hand).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hxinfra.desired import Fetched, ManagedFile, ManagedLink, PlanItem
from hxinfra.errors import HxError
from hxinfra.inventory import MEMBERS_KEY, Environment
from hxinfra.memo import IdentityCache
from hxinfra.secrets import Placeholder, Vaulted, redact, redaction_epoch

GROUPS_KEY = "hx_groups"
SENSITIVE_NOTE = "# (sensitive file: its content is never written to a plan)\n"


def plan_data(env: Environment, host: str) -> dict[str, Any]:
    """The host's merged data as the offline plan uses it: vault values as placeholders."""
    data = env.host_data(host, with_defaults=True)
    members = data.pop(MEMBERS_KEY, {})  # built from the inventory: no vault value in it, not walked per host
    # the host's groups, as a deploy sees them in host.groups (a component's files may depend on them)
    out = {k: _placeholders(v) for k, v in data.items()}
    out[MEMBERS_KEY], out[GROUPS_KEY] = members, env.host_groups(env.host(host))
    return out


def host_items(env: Environment, host: str, only: str | None = None) -> list[PlanItem]:
    """Every managed path of ``host``, from each component that applies to it (or only ``only``)."""
    groups = env.host_groups(env.host(host))
    data = plan_data(env, host)
    items: list[PlanItem] = []
    for comp in env.components:
        if comp.plan is not None and comp.applies_to(groups) and only in (None, comp.name):
            items += comp.plan(data, host)
    return items


def _placeholders(value: Any) -> Any:
    """Vault values as placeholders: a plan never decrypts, so no form of a secret can reach it.
    A list or mapping is worked out once per object (hosts share their groups' values), and is
    itself when it holds no vault value."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Vaulted):
        return Placeholder(f"vaulted-value-{value.ident}")
    if isinstance(value, (dict, list)):
        return _PLACED.get(value, lambda: _placed(value))
    return value


_PLAIN = (str, int, float, bool, type(None))
_PLACED: IdentityCache[Any] = IdentityCache()


def _placed(value: dict[str, Any] | list[Any]) -> Any:
    if isinstance(value, dict):
        out: Any = {k: _placeholders(v) for k, v in value.items()}
        same = all(out[k] is v for k, v in value.items())
    else:
        out = [_placeholders(v) for v in value]
        same = all(a is b for a, b in zip(out, value, strict=True))
    return value if same else out


def _section(item: PlanItem) -> str:
    """The item's section of a host's plan: its header line (kind, mode, owner, digest, line count),
    then its exact lines. A file whose content many hosts share (a role's rendered config) is
    redacted and digested once."""
    if isinstance(item, ManagedFile):
        key = (item.path, item.mode, item.user, item.group, item.sensitive, redaction_epoch())
        return _SECTIONS.get(item.content, lambda: _file_section(item), key)
    if isinstance(item, ManagedLink):
        return f"{SECTION}{item.path}  link -> {item.target}\n"
    if isinstance(item, Fetched):
        pin = f"pinned sha256 {item.pin}" if item.pin else "NOT pinned (hxinfra doctor says how to pin it)"
        return (
            f"{SECTION}{item.path}  fetched {item.mode} {item.user}:{item.group} at deploy time: {item.source}, {pin}\n"
        )
    return f"{SECTION}{item.path}  absent\n"


_SECTIONS: IdentityCache[str] = IdentityCache()


def _file_section(item: ManagedFile) -> str:
    body = SENSITIVE_NOTE if item.sensitive else redact(item.content)
    digest = "sensitive" if item.sensitive else hashlib.sha256(body.encode()).hexdigest()[:16]
    eol = body.endswith("\n") or not body
    lines = body.count("\n") + (0 if eol else 1)
    header = f"{item.path}  file {item.mode} {item.user}:{item.group} {digest}"
    text = body if eol else body + "\n"
    return f"{SECTION}{header}  lines={lines}{'' if eol else ' noeol'}\n{text}"


MARKER = ".hxinfra-plan"


def _prepare_out(out: Path) -> set[str]:
    """An empty or new directory, or an earlier plan (it has the marker file): never anything else.

    ``--out .`` in a checkout must not delete the checkout. Of an earlier plan, the host files
    (plain files, one link each) are kept to be written over, which costs a file system less than
    new files; everything else goes. Returns the names of the host files kept.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise HxError(f"--out {out}: not a directory")
    kept: set[str] = set()
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise HxError(
                f"--out {out}: the directory is not empty and holds no earlier plan (no {MARKER}); "
                "refusing to replace it"
            )
        with os.scandir(out) as entries:
            for entry in entries:
                if entry.name == MARKER:
                    continue
                if (
                    entry.name.endswith(".plan")
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_nlink == 1
                ):
                    kept.add(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("an hxinfra plan: hxinfra plan --out replaces this directory\n")
    return kept


def _inside(out: str, *parts: str) -> str:
    """``out/parts...`` (``out`` resolved), refused when it would land outside ``out`` (a '..' in a
    host or path). The tree is new, made by the plan itself: a normalised path is the real one."""
    target = os.path.normpath(os.path.join(out, *parts))
    if not target.startswith(out + os.sep):
        raise HxError(f"plan path {'/'.join(parts)!r} would be written outside {out}; refused")
    return target


SECTION = "### "  # a section header line of a host's plan file


def host_plan_text(host: str, items: Sequence[PlanItem]) -> str:
    """One host's plan: a section per managed path, sorted, with its kind, mode, owner and digest,
    then the file's exact lines (``lines=N`` of them) or the note that replaces a sensitive file."""
    head = f"# hxinfra plan of {host}: every path the deploys manage there (hxinfra plan --out)\n"
    return head + "".join(_section(item) for item in sorted(items, key=lambda i: i.path))


def read_host_plan(text: str) -> dict[str, tuple[str, str]]:
    """path -> (its header line, its content) from a host's plan file (the inverse of
    :func:`host_plan_text`; a link or a removal has no content)."""
    sections: dict[str, tuple[str, str]] = {}
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith(SECTION):
            continue
        header = line[len(SECTION) :].rstrip("\n")
        path = header.split("  ", 1)[0]
        count = 0
        for word in header.split():
            if word.startswith("lines="):
                count = int(word[len("lines=") :])
        body = "".join(lines[i : i + count])
        i += count
        if header.endswith(" noeol") and body.endswith("\n"):
            body = body[:-1]
        sections[path] = (header, body)
    return sections


def write_plan(env: Environment, hosts: Sequence[str], out: Path, jobs: int | None = None) -> dict[str, int]:
    """Write the plan of ``hosts`` into ``out`` (an earlier plan there is replaced): one file per
    host, ``<host>.plan``; returns the managed paths per host.

    Hosts are planned and written one after the other, so memory stays flat in the size of the
    fleet; a large fleet is split between ``jobs`` processes (default: one per core, when there are
    enough hosts to pay for it), each a fork of this one with the inventory already loaded. The
    files are the same whatever the number of processes; the first host (in ``hosts`` order) that
    cannot be planned is the error.
    """
    earlier = _prepare_out(out)
    root = str(out.resolve())
    jobs = _jobs(len(hosts)) if jobs is None else max(1, jobs)
    if jobs == 1 or not _can_fork():
        counts, failed = _write_hosts(env, hosts, root)
        error = failed[1] if failed is not None else None
    else:
        counts, error = _write_forked(env, hosts, root, jobs)
    for name in earlier - {f"{host}.plan" for host in counts}:  # an earlier plan's hosts not planned now
        os.unlink(os.path.join(root, name))
    if error is not None:
        raise error
    return {h: counts[h] for h in hosts if h in counts}


HOSTS_PER_JOB = 250  # below this a process costs more than it saves


def _can_fork() -> bool:
    """A plain fork: not where gevent has patched the process (a deploy ran in it before, so
    ``os.fork`` and ``waitpid`` belong to its hub, which waits on a loop nobody runs)."""
    if not hasattr(os, "fork"):
        return False
    monkey = sys.modules.get("gevent.monkey")
    return monkey is None or not monkey.is_module_patched("os")


def _jobs(hosts: int) -> int:
    return max(
        1,
        min(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
            hosts // HOSTS_PER_JOB,
        ),
    )


def _write_hosts(
    env: Environment, hosts: Sequence[str], root: str
) -> tuple[dict[str, int], tuple[str, Exception] | None]:
    """Plan and write ``hosts`` in turn: their counts, and the first that failed (with why)."""
    counts: dict[str, int] = {}
    for host in hosts:
        try:
            items = host_items(env, host)
            with open(_inside(root, f"{host}.plan"), "w", encoding="utf-8") as f:
                f.write(host_plan_text(host, items))
        except Exception as e:  # noqa: BLE001 - the caller raises it (or reports it from a child)
            return counts, (host, e)
        counts[host] = len(items)
    return counts, None


def _write_forked(
    env: Environment, hosts: Sequence[str], root: str, jobs: int
) -> tuple[dict[str, int], Exception | None]:
    """Every ``jobs``-th host to each of ``jobs - 1`` children and this process: each child reports
    its counts, and its first failing host and why, as JSON on a pipe. Returns every process's
    counts and the error of the first failing host (in ``hosts`` order), if any."""
    import json

    shares = [list(hosts[i::jobs]) for i in range(jobs)]
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[tuple[int, int]] = []
    failures: list[tuple[int, str, str]] = []  # (host's place, message, kind)
    counts: dict[str, int] = {}
    try:
        for share in shares[1:]:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: plan its hosts, say how it went, and leave without any cleanup
                code = 1
                try:
                    os.close(read)
                    done, failed = _write_hosts(env, share, root)
                    report: dict[str, Any] = {"counts": done}
                    if failed is not None:
                        report["failed"] = [failed[0], str(failed[1]), _kind(failed[1])]
                    with os.fdopen(write, "w", encoding="utf-8") as f:
                        f.write(json.dumps(report))
                    code = 0
                finally:
                    os._exit(code)
            os.close(write)
            children.append((pid, read))
        done, failed = _write_hosts(env, shares[0], root)
        counts.update(done)
        if failed is not None:
            failures.append((hosts.index(failed[0]), str(failed[1]), _kind(failed[1])))
        while children:
            pid, read = children[0]
            with os.fdopen(read, encoding="utf-8") as f:
                text = f.read()
            os.waitpid(pid, 0)
            children.pop(0)
            report = json.loads(text) if text else {"failed": [None, "a plan process ended without a report", "crash"]}
            counts.update(report.get("counts", {}))
            if "failed" in report:
                host, message, kind = report["failed"]
                failures.append((hosts.index(host) if host in hosts else len(hosts), message, kind))
    finally:
        for pid, read in children:  # interrupted: no child outlives the plan
            with contextlib.suppress(OSError):
                os.close(read)
                os.kill(pid, 15)
                os.waitpid(pid, 0)
    if failures:
        _, message, kind = min(failures)
        return counts, HxError(message) if kind == "hx" else RuntimeError(f"{kind}: {message}")
    return counts, None


def _kind(error: Exception) -> str:
    return "hx" if isinstance(error, HxError) else type(error).__name__


def _plan_files(root: Path) -> dict[str, dict[str, tuple[str, str]]]:
    """host -> its sections, from a plan directory (a tree of an earlier hxinfra, per-host
    directories and ``.manifest`` files, is read too: its files as content, its manifest lines as headers)."""
    hosts: dict[str, dict[str, tuple[str, str]]] = {}
    for p in sorted(root.glob("*.plan")):
        hosts[p.name[: -len(".plan")]] = read_host_plan(p.read_text(encoding="utf-8"))
    for manifest in sorted(root.glob("*.manifest")):  # the earlier layout
        host = manifest.name[: -len(".manifest")]
        sections = hosts.setdefault(host, {})
        for line in manifest.read_text(encoding="utf-8").splitlines():
            path = line.split("  ", 1)[0]
            file = root / host / path.lstrip("/")
            sections[path] = (line, file.read_text(encoding="utf-8") if file.is_file() else "")
    return hosts


def diff_trees(old: Path, new: Path) -> Iterator[str]:
    """Unified diff lines between two plans, per host and path (``--- a/<host>/<path>``): a changed
    mode, owner or link shows as its header line, a changed file as its lines."""
    if not old.is_dir():
        raise HxError(f"--against {old}: no plan there (make one with hxinfra plan --out {old})")
    a, b = _plan_files(old), _plan_files(new)
    for host in sorted(set(a) | set(b)):
        left, right = a.get(host, {}), b.get(host, {})
        for path in sorted(set(left) | set(right)):
            before, after = left.get(path), right.get(path)
            if before == after:
                continue
            rel = f"{host}{path}"
            yield from difflib.unified_diff(
                _section_lines(before),
                _section_lines(after),
                fromfile=f"a/{rel}" if before else "/dev/null",
                tofile=f"b/{rel}" if after else "/dev/null",
            )


def _section_lines(section: tuple[str, str] | None) -> list[str]:
    if section is None:
        return []
    header, body = section
    lines = [f"{SECTION}{_digestless(header)}\n"]
    return lines + [line if line.endswith("\n") else line + "\n" for line in body.splitlines(keepends=True)]


def _digestless(header: str) -> str:
    """A header as the diff shows it: kind, mode and owner (the digest and line count say nothing
    the lines below do not)."""
    words = header.split()
    if len(words) >= 4 and words[1] == "file":
        return "  ".join([words[0], " ".join(words[1:4])])
    return header


def summary(counts: dict[str, Any]) -> str:
    return f"{sum(counts.values())} managed path(s) on {len(counts)} host(s)"
