"""The ``hxinfra`` command line: one click group, one module per verb group.

Exit codes: 0 ok, 1 failure, 2 usage error (with ``--detailed-exitcode``: 0 no changes, 2 changes,
1 any error). Options read ``HXINFRA_*`` environment variables. Human progress goes to stderr;
``--json`` output goes to stdout.
"""

from __future__ import annotations

import click

from hxinfra import __version__
from hxinfra.cli.adhoc import facts, fetch, ping, run_cmd, service
from hxinfra.cli.audit import audit
from hxinfra.cli.backup import backup, restore
from hxinfra.cli.common import HxGroup
from hxinfra.cli.deploy import deploy, report
from hxinfra.cli.health import health, validate
from hxinfra.cli.import_ansible import import_ansible
from hxinfra.cli.inventory import inventory
from hxinfra.cli.known_hosts import known_hosts
from hxinfra.cli.lab import lab
from hxinfra.cli.logs import logs
from hxinfra.cli.metrics import metrics
from hxinfra.cli.pki import pki
from hxinfra.cli.plan import plan_cmd
from hxinfra.cli.recover import recover
from hxinfra.cli.vault import vault


@click.group(cls=HxGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="hxinfra")
def main() -> None:
    """Deploy and check the HX fleet (pyinfra underneath).

    \b
    Examples:
      hxinfra lab up                              boot the local lab fleet
      hxinfra deploy site --env lab               converge the lab
      hxinfra deploy site --env staging --check --diff
      hxinfra inventory host hx-web-01 --env development --explain
    """




for command in (inventory, deploy, plan_cmd, health, validate, audit, backup, restore, recover, logs, metrics, ping, run_cmd, facts, service, fetch, vault, pki, known_hosts,
                import_ansible, report, lab):
    main.add_command(command)
