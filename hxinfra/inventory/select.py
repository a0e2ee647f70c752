"""``--limit`` on an environment: the hosts an Ansible pattern selects, in the environment's order.

Beside the environment (not in the runner) because every verb that touches hosts selects them,
and most of those never deploy: health, audit, logs, backups, the ad-hoc verbs.
"""

from __future__ import annotations

from collections.abc import Iterable

from hxinfra.inventory.core import Environment
from hxinfra.patterns import select


def select_hosts(env: Environment, limit: Iterable[str]) -> list[str]:
    """Hosts that ``--limit`` selects, with Ansible's pattern grammar (several: a union)."""
    patterns = list(limit)
    if not patterns:
        return list(env.hosts)
    return select(patterns, list(env.hosts), env.groups)
