"""The offline plan: every file the deploys would write, for every host, without SSH.

Each component may give a pure ``plan(data, host_name)`` function (the same one its deploy uses)
returning its managed paths. The plan renders them into ``DIR/<host>/<absolute path>`` plus one
``DIR/<host>.manifest`` (mode, owner, link targets, removals), so a pull request can show the
diff of what it would change in every environment. Secrets are never written: sensitive files
are replaced by a note, and every vault value is redacted (inline ``!vault`` values are not
even decrypted when no password is at hand).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hxinfra.errors import HxError
from hxinfra.inventory import MEMBERS_KEY, Environment
from hxinfra.operations import ConfigItem, ManagedFile, ManagedLink
from hxinfra.vault import Placeholder, Vaulted, redact

GROUPS_KEY = "hx_groups"
SENSITIVE_NOTE = "# (sensitive file: its content is never written to a plan)\n"


def plan_data(env: Environment, host: str) -> dict[str, Any]:
    """The host's merged data as the offline plan uses it: vault values as placeholders."""
    data = env.host_data(host, with_defaults=True)
    members = data.pop(MEMBERS_KEY, {})  # built from the inventory: no vault value in it, not walked per host
    # the host's groups, as a deploy sees them in host.groups (a component's files may depend on them)
    return {**_placeholders(data), MEMBERS_KEY: members, GROUPS_KEY: env.host_groups(env.host(host))}


def host_items(env: Environment, host: str, only: str | None = None) -> list[ConfigItem]:
    """Every managed path of ``host``, from each component that applies to it (or only ``only``)."""
    groups = env.host_groups(env.host(host))
    data = plan_data(env, host)
    items: list[ConfigItem] = []
    for comp in env.components:
        if comp.plan is not None and comp.applies_to(groups) and only in (None, comp.name):
            items += comp.plan(data, host)
    return items


def _placeholders(value: Any) -> Any:
    """Vault values as placeholders: a plan never decrypts, so no form of a secret can reach it."""
    if isinstance(value, Vaulted):
        return Placeholder(f"vaulted-value-{value.ident}")
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def _manifest_line(item: ConfigItem) -> str:
    if isinstance(item, ManagedFile):
        digest = "sensitive" if item.sensitive else hashlib.sha256(redact(item.content).encode()).hexdigest()[:16]
        return f"{item.path}  file {item.mode} {item.user}:{item.group} {digest}"
    if isinstance(item, ManagedLink):
        return f"{item.path}  link -> {item.target}"
    return f"{item.path}  absent"


MARKER = ".hxinfra-plan"


def _prepare_out(out: Path) -> None:
    """An empty or new directory, or an earlier plan (it has the marker file): never anything else.

    ``--out .`` in a checkout must not delete the checkout.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise HxError(f"--out {out}: not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise HxError(f"--out {out}: the directory is not empty and holds no earlier plan (no {MARKER}); "
                          "refusing to replace it")  # fmt: skip
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("an hxinfra plan: hxinfra plan --out replaces this directory\n")


def _inside(out: str, *parts: str) -> str:
    """``out/parts...`` (``out`` resolved), refused when it would land outside ``out`` (a '..' in a
    host or path). The tree is new, made by the plan itself: a normalised path is the real one."""
    target = os.path.normpath(os.path.join(out, *parts))
    if not target.startswith(out + os.sep):
        raise HxError(f"plan path {'/'.join(parts)!r} would be written outside {out}; refused")
    return target


def write_plan(env: Environment, hosts: Sequence[str], out: Path) -> dict[str, int]:
    """Render the plan of ``hosts`` into ``out`` (an earlier plan there is replaced); returns files per host."""
    _prepare_out(out)
    root = str(out.resolve())
    made: set[str] = set()  # directories made: thousands of hosts share the same few paths
    counts = {}
    for host in hosts:
        items = host_items(env, host)
        manifest = []
        for item in sorted(items, key=lambda i: i.path):
            manifest.append(_manifest_line(item))
            if isinstance(item, ManagedFile):
                target = _inside(root, host, item.path.lstrip("/"))
                parent = os.path.dirname(target)
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(SENSITIVE_NOTE if item.sensitive else redact(item.content))
        with open(_inside(root, f"{host}.manifest"), "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in manifest))
        counts[host] = len(items)
    return counts


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


def diff_trees(old: Path, new: Path) -> Iterator[str]:
    """Unified diff lines (``---``/``+++`` headers) between two plan trees."""
    if not old.is_dir():
        raise HxError(f"--against {old}: no plan there (make one with hxinfra plan --out {old})")
    a, b = _files(old), _files(new)
    for rel in sorted(set(a) | set(b)):
        left = a[rel].read_text().splitlines(keepends=True) if rel in a else []
        right = b[rel].read_text().splitlines(keepends=True) if rel in b else []
        if left == right:
            continue
        yield from difflib.unified_diff(
            left,
            right,
            fromfile=f"a/{rel}" if rel in a else "/dev/null",
            tofile=f"b/{rel}" if rel in b else "/dev/null",
        )


def summary(counts: dict[str, Any]) -> str:
    return f"{sum(counts.values())} managed path(s) on {len(counts)} host(s)"
