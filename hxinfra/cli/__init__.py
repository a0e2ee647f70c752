"""The ``hxinfra`` command line: one click group, one module per verb group.

Exit codes: 0 ok, 1 failure, 2 usage error (with ``--detailed-exitcode``: 0 no changes, 2 changes,
1 any error). Options read ``HXINFRA_*`` environment variables. Human progress goes to stderr;
``--json`` output goes to stdout.
"""

from __future__ import annotations

import importlib

import click

from hxinfra.cli.common import HxGroup

# verb -> "module:attribute": a verb's module (and what it imports: pyinfra, cryptography, the
# audit's controls...) loads only when that verb runs, so `hxinfra deploy` starts as fast as pyinfra
VERBS = {
    "audit": "audit:audit",
    "backup": "backup:backup",
    "dashboard": "dashboard:dashboard",
    "deploy": "deploy:deploy",
    "doctor": "doctor:doctor_cmd",
    "drift": "drift:drift_cmd",
    "facts": "adhoc:facts",
    "fetch": "adhoc:fetch",
    "health": "health:health",
    "history": "history:history_cmd",
    "import-ansible": "import_ansible:import_ansible",
    "inventory": "inventory:inventory",
    "known-hosts": "known_hosts:known_hosts",
    "lab": "lab:lab",
    "logs": "logs:logs",
    "metrics": "metrics:metrics",
    "ping": "adhoc:ping",
    "pki": "pki:pki",
    "plan": "plan:plan_cmd",
    "recover": "recover:recover",
    "report": "deploy:report",
    "restore": "backup:restore",
    "run": "adhoc:run_cmd",
    "service": "adhoc:service",
    "validate": "health:validate",
    "vault": "vault:vault",
    "watch": "watch:watch",
}


class LazyGroup(HxGroup):
    """The top-level group: every verb is listed, and imported only when it is the one invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in VERBS:
            return None
        module, attr = VERBS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"hxinfra.cli.{module}"), attr)
        assert isinstance(command, click.Command) and command.name == cmd_name, cmd_name
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="hxinfra", prog_name="hxinfra")
def main() -> None:
    """Deploy and check the HX fleet (pyinfra underneath).

    \b
    Examples:
      hxinfra lab up                              boot the local lab fleet
      hxinfra deploy site --env lab               converge the lab
      hxinfra deploy site --env staging --check --diff
      hxinfra inventory host hx-web-01 --env development --explain
    """
