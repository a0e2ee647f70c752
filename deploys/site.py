"""The HX site: every component of the registry, in its order, on the hosts of its groups.

Run it with either CLI (``pyinfra inventories/development.py deploys/site.py --dry --diff``
or ``hxinfra deploy site --env development --check --diff``) or import it:
``from deploys.site import site``.

Each host runs its operations in the order called; across hosts, pyinfra orders operations only
where the hosts share one. So after each component every host takes one shared step (a barrier):
nothing of the next component starts on any host before the previous one is through on all of
them (the gateway answers before a web UI checks its health, the web UI's new colour answers
before nginx switches to it). pyinfra names an operation by the line numbers of its call stack,
so each component is called from a line of its own: the loop calls it through a one-line code unit
named after it whose line number is its position in the registry (see :func:`_from_own_line`). A
new component is one entry in ``deploys.COMPONENTS``, nothing here.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deploys import COMPONENTS, component
from hxinfra.deploytools import is_deploy_file
from hxinfra.ops.system import barrier


def _apply(name: str) -> None:
    """Apply one component where its groups say (like an Ansible play's ``hosts:``), then wait
    for every host to be through it."""
    contract, apply = component(name)
    if contract.applies_to(host.groups):
        apply()
    barrier(name=f"Wait until every host is through {name}")


def _from_own_line(position: int, name: str) -> None:
    """Apply component ``name`` from line ``position`` of a code unit of its own (``<site: name>``).

    pyinfra orders a host's operations by the line numbers of their call stack, compared in turn:
    called from one loop line, the lines of two components' deploy files would be compared and
    their operations interleaved. The unit's line is the one number that differs between
    components, and it grows with the registry's order; a traceback names the component."""
    code = compile("\n" * (position - 1) + "_apply(name)\n", f"<site: {name}>", "exec")
    exec(code, {"_apply": _apply, "name": name})  # noqa: S102 - a fixed one-line call, no data in it


@deploy("HX site")
def site() -> None:
    """Every component, in the registry's order (deploys.COMPONENTS)."""
    for position, name in enumerate(COMPONENTS, 1):
        _from_own_line(position, name)


if is_deploy_file(globals()):
    site()
