"""Environments: one Python inventory per environment, with Ansible-style data layers.

An inventory file calls :func:`environment` and exports its groups for pyinfra::

    _env = environment(__file__, data={...}, hosts={...}, components=...)
    globals().update(_env.pyinfra_groups())

Data layers, lowest first (the same under ``pyinfra`` and ``hxinfra``):

1. deploy defaults (each component's ``DEFAULTS``, pyinfra ``data_defaults``)
2. ``all``: ``inventories/group_vars/all.yml``
3. environment: ``data=`` of the inventory file, then ``inventories/<env>/group_vars/all.yml``
4. group, for each of the host's groups (with their parent groups) in Ansible's order: shallower
   groups first, deeper (child) groups later, then ``hx_group_priority`` (default 1; higher wins, like
   ``ansible_group_priority``), then name: ``inventories/group_vars/<group>.yml`` then
   ``inventories/<env>/group_vars/<group>.yml``
5. host: ``data`` of the host entry, then ``inventories/<env>/host_vars/<host>.yml``
6. extra vars (``hxinfra -e``, the top layer of the environment ``hxinfra deploy`` hands to pyinfra;
   ``-e`` arguments in ``HXINFRA_EXTRA_VARS`` for the plain pyinfra CLI; pyinfra's ``--data`` sits
   above everything as well)

A ``<name>.yml`` file may also be a directory ``<name>/`` of YAML files (e.g. ``vault.yml``
beside ``main.yml``), read in name order. Merging replaces whole values, as Ansible's default
``hash_behaviour = replace`` does.

The merged result is handed to pyinfra as host data, so pyinfra's own group precedence (the
file-name group last) cannot reorder the layers.

A string value may reference another key as Ansible layouts do (``db_password: "{{ vault_db_password }}"``):
a whole-value reference takes the referenced value as it is (a vault value stays one), a reference
inside a longer string builds a string (masked as a whole when it holds a vault value). A vault file
that cannot be opened (no password for its vault id) is kept *sealed*: the inventory and the offline
plan show its values as masked placeholders, and a deploy to a host that reads it stops with an
error naming the file and the vault id.

One module per purpose: :mod:`~hxinfra.inventory.core` (hosts, groups, layers, merge,
validation), :mod:`~hxinfra.inventory.loading` (``environment()``, ``load_environment``),
:mod:`~hxinfra.inventory.refs` (``{{ references }}``), :mod:`~hxinfra.inventory.tree` (names and the
group tree), :mod:`~hxinfra.inventory.topology` (``fleet.yml``), :mod:`~hxinfra.inventory.select`
(``--limit`` on an environment) and :mod:`~hxinfra.inventory.handoff` (the one place of hidden state).
"""

from hxinfra.inventory.core import (
    MEMBERS_KEY,
    NOW_KEY,
    PRIORITY_KEY,
    SEALED_KEY,
    TRUST_KEYS,
    Environment,
    HostEntry,
    Layer,
)
from hxinfra.inventory.handoff import EXTRA_VARS_ENV, extra_vars_from_env, extra_vars_layer, reused, reusing
from hxinfra.inventory.loading import environment, inventory_file, known_environments, load_environment
from hxinfra.inventory.refs import FILL_IN_PREFIX, REF
from hxinfra.inventory.select import select_hosts
from hxinfra.inventory.topology import topology_hosts, topology_suites
from hxinfra.inventory.tree import descendants, group_name_problem, host_name_problem

__all__ = [
    "EXTRA_VARS_ENV",
    "FILL_IN_PREFIX",
    "MEMBERS_KEY",
    "NOW_KEY",
    "PRIORITY_KEY",
    "REF",
    "SEALED_KEY",
    "TRUST_KEYS",
    "Environment",
    "HostEntry",
    "Layer",
    "descendants",
    "environment",
    "extra_vars_from_env",
    "extra_vars_layer",
    "group_name_problem",
    "host_name_problem",
    "inventory_file",
    "known_environments",
    "load_environment",
    "reused",
    "reusing",
    "select_hosts",
    "topology_hosts",
    "topology_suites",
]
