"""Strict Jinja2 rendering for managed files.

An undefined variable is an error (never an empty string in a config file), and every
rendered file starts with a "managed by hxinfra" header so whoever opens it on a host knows
not to edit it by hand.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import shlex
import time
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from hxinfra import memo
from hxinfra.errors import HxError
from hxinfra.memo import Generations, IdentityCache

HEADER = "managed by hxinfra ({source}); local changes are overwritten"


class TemplateError(HxError):
    """A template could not be rendered (undefined variable, syntax error, missing file)."""


def managed_header(source: str, comment: str = "#") -> str:
    return f"{comment} {HEADER.format(source=source)}\n"


@functools.cache
def _environment(root: str) -> jinja2.Environment:
    """One environment per templates root: each template is compiled once per process, not per
    host (a plan of 1000 hosts spent most of its time recompiling); edited files still reload."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - renders config files, not HTML
        cache_size=400 if memo.ENABLED else 0,  # HXINFRA_MEMO=off: every template compiled anew
    )
    # every data value a template puts into a shell script goes through this filter
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


def _variables(root: str, name: str) -> tuple[str, ...] | None:
    """The top-level names template ``name`` reads (Jinja2's own analysis), or None when it pulls
    in other templates (include, import, extends: their names are not seen here). Cached while
    the file is unchanged."""
    key = (root, name)
    cached = _VARIABLES.get(key)
    now = time.monotonic()
    if cached is not None and memo.ENABLED and now - _CHECKED.get(key, 0.0) < 1.0:
        return cached[1]  # looked at less than a second ago: a plan renders thousands of files a second
    path = os.path.join(root, name)
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    _CHECKED[key] = now
    if cached is None or cached[0] != stamp or not memo.ENABLED:
        from jinja2 import meta

        env = _environment(root)
        try:
            ast = env.parse(Path(path).read_text(encoding="utf-8"))
        except (OSError, jinja2.TemplateSyntaxError):
            return None
        names = (
            None if list(meta.find_referenced_templates(ast)) else tuple(sorted(meta.find_undeclared_variables(ast)))
        )
        cached = _VARIABLES[key] = (stamp, names)
    return cached[1]


_VARIABLES: dict[tuple[str, str], tuple[int, tuple[str, ...] | None]] = {}
_CHECKED: dict[tuple[str, str], float] = {}  # when each template's file was last looked at
_RENDERED_MAX = 2048  # per generation (two are kept)
_RENDERED: Generations[str] = Generations(_RENDERED_MAX)


def _memo_key(
    root: str, name: str, names: tuple[str, ...] | None, context: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """What the output of a render depends on: the template (file and version) and the values of
    the names it reads. Hosts of one role render most files from equal values: rendered once."""
    if names is None:
        return None
    values: list[tuple[Any, ...]] = []
    try:  # a plain value as itself with its type; others as pickle's bytes (with types and order, fast)
        for n in names:
            v = context.get(n, _NONE)
            values.append((n,) if v is _NONE else (n, type(v), v) if type(v) in _PLAIN else (n, _pickled(v)))
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None
    return (root, name, _VARIABLES[(root, name)][0], tuple(values))


_PLAIN = (str, int, bool, type(None))  # exact types: a subclass (a vault Secret), a float (-0.0 == 0.0) is pickled
_NONE = object()


_PICKLED: IdentityCache[bytes] = IdentityCache(limit=_RENDERED_MAX)


def _pickled(value: Any) -> bytes:
    """A value's pickle; a list or mapping the same object as before (host data and what is derived
    from it is read-only: a fleet shares one members list, one rules list...) is pickled once."""
    if not isinstance(value, (list, dict)):
        return pickle.dumps(value, protocol=5)
    return _PICKLED.get(value, lambda: pickle.dumps(value, protocol=5))


def template_context(data: Mapping[str, Any], extra: Mapping[str, Any]) -> Mapping[str, Any]:
    """A template's names: ``extra`` over the host's data, as a view (the data is not copied, and a
    render reads only the names its template uses, so a function kept by what it read
    (:func:`hxinfra.memo.by_reads`) still sees them)."""
    return ChainMap(dict(extra), data)  # type: ignore[arg-type]  # read only


def render(root: Path, name: str, context: Mapping[str, Any], comment: str = "#") -> str:
    """Render ``root/name`` with ``context``; the header names the template.

    A render is kept by the pickled values of the names its template reads (not when a value cannot
    be pickled, or the template includes another): the same file for many hosts (an offline plan of
    thousands) is rendered once.
    """
    names = _variables(str(root), name)
    key = _memo_key(str(root), name, names, context)
    if key is not None and (kept := _RENDERED.get(key)) is not None:
        return kept
    if names is not None:  # the names the template reads, not the whole host data: Jinja2 copies what it gets
        context = {n: context[n] for n in names if n in context}
    result = _render(root, name, context, comment)
    if key is not None:
        _RENDERED.put(key, result)
    return result


def _template(root: str, name: str) -> jinja2.Template:
    """The compiled template: Jinja2's own cache looks at the file on every use; here the file is
    looked at as its names are (at most once a second, :func:`_variables`), and compiled again when
    it changed."""
    known = _VARIABLES.get((root, name))
    kept = _TEMPLATES.get((root, name))
    if known is not None and kept is not None and kept[0] == known[0]:
        return kept[1]
    template = _environment(root).get_template(name)
    if known is not None:
        _TEMPLATES[(root, name)] = (known[0], template)
    return template


_TEMPLATES: dict[tuple[str, str], tuple[int, jinja2.Template]] = {}


def _render(root: Path, name: str, context: Mapping[str, Any], comment: str) -> str:
    try:
        body = _template(str(root), name).render(**context)
    except jinja2.UndefinedError as e:
        raise TemplateError(f"template {name}: undefined variable: {e.message}") from None
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name} not found under {root}") from None
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template {name} line {e.lineno}: {e.message}") from None
    header = managed_header(f"templates/{name}", comment)
    if body.startswith("#!"):  # a script: the interpreter line stays first
        first, _, rest = body.partition("\n")
        return f"{first}\n{header}{rest}"
    return header + body


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def systemd_environment(env: Mapping[str, str]) -> str:
    """An ``EnvironmentFile=`` body: ``NAME="value"`` lines, each value double-quoted with ``\\``
    and ``"`` escaped (systemd's own quoting), so no value can add a variable or a line."""
    lines = []
    for key, value in env.items():
        if not ENV_NAME.fullmatch(key):
            raise TemplateError(f"environment variable name {key[:40]!r} is not a plain name")
        text = str(value)
        if "\n" in text or "\r" in text or "\x00" in text:
            raise TemplateError(f"environment variable {key}: a value must be one line")
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)
