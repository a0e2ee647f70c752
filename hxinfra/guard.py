"""The one guard between an operator and the hosts of a protected environment.

Whether an environment is protected is decided by the environment as loaded (its inventory file
says ``protected=True``, or its canonical name or ``hx_environment`` is production or staging),
never by the string someone typed: ``--env ./production`` is not an environment name at all
(:func:`check_name`), and a copy of the production inventory under another file name is still
protected by what it declares.

Every path that changes hosts passes here before host selection and before any connection:

- the CLI verbs (``deploy``, ``restore``, ``run``, ``service``, ``recover``, ``pki renew``,
  ``backup run`` and ``push``): :func:`confirmation` asks at a terminal, or takes ``--yes`` on that
  command line, or ``HXINFRA_YES`` whose value is the environment's name (``HXINFRA_YES=1``
  confirms nothing: a variable left in a profile must not confirm every later production run);
- the engine (:func:`hxinfra.runner.run_deploy`, a changing :class:`hxinfra.adhoc.Session`):
  :func:`require` refuses unless the caller passes ``confirm=<environment name>``;
- the plain pyinfra CLI and pyinfra's API with the project's deploys: :func:`check_plain`
  refuses unless the run is ``--dry`` or the operator passed ``--data hx_confirm=<name>``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from hxinfra.errors import HxError


class Environment(Protocol):
    """What the guard reads of an environment (:class:`hxinfra.inventory.Environment`)."""

    name: str
    protected: bool


# Environments whose changes need a confirmation, whatever their inventory file declares.
PROTECTED_ENVIRONMENTS = ("production", "staging")
# An environment's name: what --env takes and what history, metrics and backup paths are named by.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
CONFIRM_VAR = "HXINFRA_YES"
# pyinfra --data hx_confirm=NAME: the plain pyinfra CLI's explicit confirmation
CONFIRM_KEY = "hx_confirm"
# set by the engine in every host's data: the environment is protected (read by check_plain)
PROTECTED_KEY = "hx_protected"

# A confirmation as the engine takes it: the environment's name, or a function of the loaded
# environment that returns it (the CLI's prompt, asked once the environment is known).
Confirm = str | Callable[[Environment], str] | None


class GuardError(HxError):
    """A change of a protected environment without its confirmation."""


def check_name(name: str, known: Sequence[str] = ()) -> str:
    """``name`` if it is an environment name (``[a-z0-9][a-z0-9_-]*``), else an error listing ``known``."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        listed = f" (known: {', '.join(known)})" if known else ""
        raise GuardError(f"{name!r} is not an environment name: a name such as production or lab{listed}")
    return name


def is_protected(name: str, declared: bool | None, data: Mapping[str, Any]) -> bool:
    """An environment is protected when it says so, or when its name or ``hx_environment`` is one of
    :data:`PROTECTED_ENVIRONMENTS` (an inventory cannot declare itself out of that)."""
    return bool(declared) or name in PROTECTED_ENVIRONMENTS or str(data.get("hx_environment")) in PROTECTED_ENVIRONMENTS


def require(env: Environment, confirm: Confirm, action: str) -> str | None:
    """Refuse ``action`` on a protected ``env`` unless ``confirm`` names it; the confirmed name.

    ``confirm`` may be a function of the environment (asked only when it is protected)."""
    if not env.protected:
        return None
    given = confirm(env) if callable(confirm) else confirm
    if given != env.name:
        raise GuardError(
            f"refusing to {action} on {env.name}: a protected environment needs a confirmation "
            f"(the CLI: a terminal's answer or --yes; the Python API: confirm={env.name!r})"
        )
    return given


def confirmation(yes: bool, action: str, hosts: Callable[[Any], Sequence[str]] | None = None) -> Confirm:
    """The CLI's confirmation for :func:`require`, asked once the environment is loaded.

    ``--yes`` on this command line confirms; so does ``HXINFRA_YES=<the environment's name>``; else a
    terminal is asked (naming the hosts when ``hosts`` can say which); else the change is refused."""

    def ask(env: Environment) -> str:
        if yes:
            return env.name
        var = os.environ.get(CONFIRM_VAR, "")
        if var == env.name:
            return env.name
        note = f" ({CONFIRM_VAR} confirms only when it is {env.name!r}, not {var!r})" if var else ""
        if not sys.stdin.isatty():
            raise GuardError(
                f"refusing to {action} on {env.name} (protected) without a confirmation{note}: answer at a "
                f"terminal, add --yes, or set {CONFIRM_VAR}={env.name}"
            )
        import click

        names = list(hosts(env)) if hosts is not None else []
        where = f" ({len(names)} host(s): {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})" if names else ""
        click.confirm(f"{action} on {env.name}{where}?", abort=True, err=True)
        return env.name

    return ask


def settle(env: Environment, yes: bool, action: str) -> str | None:
    """A CLI verb's confirmation, settled now (before host selection): the name to hand the engine's
    ``confirm=``, None for an environment that needs none; refused or aborted otherwise."""
    return require(env, confirmation(yes, action), action)


# ---------------------------------------------------------------------------- pyinfra's own runs

# while hxinfra runs pyinfra in this process: the environment it confirmed (or checks, changing nothing)
_engine: list[str] = []


@contextlib.contextmanager
def engine_run(name: str) -> Iterator[None]:
    """While the engine runs pyinfra on environment ``name`` it has confirmed (or in check mode)."""
    _engine.append(name)
    try:
        yield
    finally:
        _engine.pop()


def pyinfra_cli_args(argv: Sequence[str] | None = None) -> list[str] | None:
    """The arguments of the plain ``pyinfra`` command this process is, or None when it is not one."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return None
    prog = Path(argv[0])
    if prog.name == "pyinfra" or (prog.name == "__main__.py" and prog.parent.name in ("pyinfra", "pyinfra_cli")):
        return argv[1:]
    return None


def _cli_confirms(name: str, args: Sequence[str]) -> bool:
    """Whether pyinfra's command line changes nothing (``--dry``, ``debug-*``) or confirms ``name``."""
    if "--dry" in args or any(a.startswith("debug-") for a in args):
        return True
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--data" and i + 1 < len(args) else arg[7:] if arg.startswith("--data=") else ""
        if value.partition("=")[::2] == (CONFIRM_KEY, name):
            return True
    return False


def check_plain(name: str, data: Mapping[str, Any] | None = None, argv: Sequence[str] | None = None) -> None:
    """Refuse a run of the project's inventory or deploys on protected environment ``name`` outside
    the engine: the plain pyinfra CLI needs ``--dry`` or ``--data hx_confirm=NAME``; pyinfra's API
    (someone's own code) needs ``hx_confirm`` = NAME in the hosts' data. ``data`` is the host's data
    at deploy time (None at inventory load, where only the command line can be read)."""
    if name in _engine:
        return
    if data is not None and str(data.get(CONFIRM_KEY, "")) == name:
        return
    args = pyinfra_cli_args(argv)
    if args is None and data is None:
        return  # pyinfra's API loading an inventory: the deploy, which sees the data, decides
    if args is not None and _cli_confirms(name, args):
        return
    example = f"pyinfra {' '.join(shlex.quote(a) for a in (args or ['INVENTORY', 'DEPLOY'])[:2])}"
    raise GuardError(
        f"{name} is a protected environment: a change needs a confirmation. Check first ({example} --dry "
        f"--diff), then confirm with {example} --data {CONFIRM_KEY}={name} (or use hxinfra deploy, which asks)"
    )
