"""The ``lab`` environment: an HX topology mapped onto the running lab hosts."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hxinfra.components import Component
from hxinfra.inventory import Environment
from hxinfra.lab.core import Lab


class LabEnvironment(Environment):
    """An :class:`Environment` whose hosts are this machine's running lab hosts.

    ``topology`` maps lab host names to HX groups; ``hxinfra lab up`` boots those names.
    Running hosts outside the topology (booted by name for a test) join with no group.
    """

    topology: dict[str, list[str]]
    lab: Lab


def lab_name() -> str:
    return os.environ.get("HXINFRA_LAB", "default")


def lab_environment(
    file: str | Path,
    topology: Mapping[str, list[str]],
    data: Mapping[str, Any] | None = None,
    components: Iterable[Component] = (),
) -> LabEnvironment:
    lab = Lab(lab_name())
    running = {h.name: h for h in lab.hosts() if h.state == "running"}
    hosts: dict[str, dict[str, Any]] = {}
    for name, host in running.items():
        hosts[name] = {"address": host.ip, "groups": list(topology.get(name, []))}
    env_data = {**lab.ssh_data(), **(data or {})}
    env = LabEnvironment(file, hosts=hosts, data=env_data, components=components, name="lab")
    env.topology = {k: list(v) for k, v in topology.items()}
    env.lab = lab
    env.validate()
    return env
