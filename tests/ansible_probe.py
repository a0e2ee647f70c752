"""ansible-core's own answers for a list of inventories (run as a script, JSON in and out).

For each case: the hosts of ``all`` in Ansible's order, the hosts each ``--limit`` pattern leaves
of a play on ``all`` (as ``ansible-playbook --limit`` orders them), and chosen variables of every
host as the variable manager merges them (group_vars, host_vars, ``-e``). It runs in a process of
its own: ansible-core keeps global state (its CLI arguments, caches) that a test process must not.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def answer(case: dict[str, Any]) -> dict[str, Any]:
    from ansible import context
    from ansible.inventory.manager import InventoryManager
    from ansible.module_utils.common.collections import ImmutableDict
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.vars import load_extra_vars
    from ansible.vars.manager import VariableManager

    context.CLIARGS = ImmutableDict(extra_vars=tuple(f"{k}={v}" for k, v in case.get("extra", {}).items()))
    load_extra_vars.extra_vars = None  # it keeps the first case's -e otherwise
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[case["path"]])
    variables = VariableManager(loader=loader, inventory=inventory)
    out: dict[str, Any] = {"all": [h.name for h in inventory.get_hosts("all")], "limits": {}, "vars": {}}
    for pattern in case.get("limits", []):
        inventory.subset(pattern)
        try:
            out["limits"][pattern] = [h.name for h in inventory.get_hosts("all")]
        except Exception as e:  # an error is an answer too (a subscript out of range)
            out["limits"][pattern] = f"error: {type(e).__name__}"
        inventory.subset(None)
    for name in out["all"]:
        merged = variables.get_vars(host=inventory.get_host(name))
        out["vars"][name] = {k: merged.get(k) for k in case.get("keys", ["probe"])}
    return out


if __name__ == "__main__":
    json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)
