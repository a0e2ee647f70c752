"""What every verb of the ``hxinfra`` CLI shares: one-line errors, masking, the environment option."""

import contextvars
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hxinfra.datafiles import looks_secret, parse_extra_vars
from hxinfra.errors import HxError
from hxinfra.guard import CONFIRM_VAR, GuardError, check_name
from hxinfra.inventory import Environment, inventory_file, known_environments, load_environment
from hxinfra.paths import find_project_root, project_root
from hxinfra.secrets import MASK, Keyring, Vaulted, VaultError, iter_vaulted, mask, redact


def _mask(key: str, value: Any) -> Any:
    """A value for display: every vault value inside it, at any depth, masked (and secret-named keys)."""
    if looks_secret(key) and value not in (None, "", [], {}):
        return MASK
    return mask(value)


def _err(message: str) -> None:
    click.echo(click.style("hxinfra: error: ", fg="red", bold=True) + redact(message), err=True)


_ARGV: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("hx_argv", default=())  # this run's words
JSON_PRINTED = "hx_json_printed"  # click context meta: this run has printed its --json document


def echo_json(text: str) -> None:
    """Print a ``--json`` document (already redacted where it may hold secrets) to stdout, once."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[JSON_PRINTED] = True
    click.echo(text)


def _json_error(argv: tuple[str, ...] | list[str], message: str, code: int, ctx: click.Context | None) -> None:
    """With ``--json``, a run that fails before printing its document prints one all the same:
    ``{"error": ..., "exit_code": ...}``, so stdout is JSON in every case (the line on stderr stays)."""
    if "--json" not in argv or (ctx is not None and ctx.meta.get(JSON_PRINTED)):
        return
    click.echo(json.dumps({"error": redact(message), "exit_code": code}, indent=2))


def _warn(env: Environment) -> None:
    lines = env.warnings + [f"{why}: its values stay masked/unknown here" for why in env.sealed(env.hosts)]
    for line in lines:
        click.echo(click.style("hxinfra: warning: ", fg="yellow") + redact(line), err=True)


class HxGroup(click.Group):
    """Turns expected errors into one line and exit 1 (never a traceback).

    With ``--detailed-exitcode`` a usage error exits 1, not 2 (as Terraform does): 2 then means
    "changes", and a typo must never look like a diff to a script.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HxError as e:
            _err(str(e))
            _json_error(_ARGV.get(), str(e), 1, ctx)
            sys.exit(1)

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        _ARGV.set(tuple(argv))
        extra.pop("standalone_mode", None)
        try:
            return super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as e:
            e.show()
            detailed = "--detailed-exitcode" in argv
            code = 1 if detailed and e.exit_code == 2 else e.exit_code
            _json_error(argv, e.format_message(), code, None)
            sys.exit(code)


def env_name_check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--env`` takes an environment's name only: anything else (``./production``) is a usage error
    that lists the names, before anything is loaded."""
    if value is None:
        return None
    try:
        root = find_project_root()
        return check_name(value, known_environments(root) if root else ())
    except GuardError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


ENV_OPTION = click.option(
    "--env",
    "-E",
    "env_name",
    envvar="HXINFRA_ENV",
    show_envvar=True,
    required=True,
    callback=env_name_check,
    help="Environment: production, staging, development, testing or lab.",
)


_F = TypeVar("_F", bound=Callable[..., Any])


def extra_vars_option(help: str) -> Callable[[_F], _F]:
    """``-e/--extra-vars`` (repeatable: ``key=value`` or ``@file.yml``), with what the verb takes."""
    return click.option("--extra-vars", "-e", "extra", multiple=True, metavar="VARS", help=help)


# --yes on a verb that changes hosts: that command line confirms a protected environment (hxinfra.guard)
YES_OPTION = click.option(
    "--yes",
    "-y",
    is_flag=True,
    help=f"Confirm a change of production or staging on this command line ({CONFIRM_VAR}=<env name> does too).",
)


def _load(env_name: str, extra: tuple[str, ...] = (), keyring: Keyring | None = None) -> Environment:
    """The environment, validated, its warnings shown; with ``keyring``, its secrets registered."""
    env = load_environment(inventory_file(project_root(), env_name), extra_vars=parse_extra_vars(extra))
    _warn(env)
    if keyring is not None:
        register_secrets(env, keyring)
    return env


def register_secrets(env: Environment, keyring: Keyring) -> int:
    """Open every vault value of ``env`` that the given passwords open (none is asked for), so that
    whatever a host or a report echoes of one is masked (health, audit, dashboard). How many."""
    quiet = keyring.unattended()
    seen: dict[int, Vaulted] = {}
    for name in env.hosts:
        for value in iter_vaulted(env.host_data(name)):
            seen.setdefault(id(value), value)
    opened = 0
    for value in seen.values():
        try:
            value.reveal(quiet)
            opened += 1
        except VaultError:  # no password for it here: it cannot be in anything this run shows either
            continue
    return opened


# ---------------------------------------------------------------------------- inventory


def guide_vars(extra: tuple[str, ...], keys: dict[str, str], verb: str) -> dict[str, Any]:
    """The seed guide's ``-e`` variables a verb takes (``keys``: guide name -> option name), as
    option values; any other ``-e`` name is a usage error naming what the verb takes. A list
    value (``services=[a, b]``) becomes the comma-separated form of the option."""
    values = parse_extra_vars(extra)
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise click.UsageError(f"-e: {verb} takes {', '.join(keys)}; not {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for k, v in values.items():
        out[keys[k]] = ",".join(map(str, v)) if isinstance(v, list) else v
    return out
