"""Host data is read-only: an in-place change raises, naming the key, wherever deploy code runs."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys

import pytest
import yaml
from conftest import INVENTORY, ROOT

from deploys.firewall import COMPONENT as FIREWALL
from deploys.firewall.config import DEFAULTS as FIREWALL_DEFAULTS
from hxinfra.deploytools import component_data
from hxinfra.frozen import FrozenDict, FrozenList, ReadOnlyDataError, freeze, freeze_values
from hxinfra.inventory import load_environment

GROUP_VARS = """
hx_admin_networks: [10.1.0.0/16]
firewall_rules:
  - {port: 9100, sources: [10.2.0.0/16], why: node exporter}
"""


@pytest.fixture
def env(project):
    project("inventories/demo.py", INVENTORY)
    project("inventories/group_vars/all.yml", GROUP_VARS)
    return load_environment(project.root / "inventories/demo.py")


def test_a_list_append_raises_naming_the_key(env):
    data = env.host_data("web1")
    with pytest.raises(ReadOnlyDataError, match=r"append\(\) would change hx_admin_networks in place"):
        data["hx_admin_networks"].append("192.0.2.0/24")
    assert env.host_data("web2")["hx_admin_networks"] == ["10.1.0.0/16"]  # nothing leaked to the other host


def test_a_dict_assignment_and_a_nested_change_raise(env):
    data = env.host_data("web1")
    rule = data["firewall_rules"][0]
    with pytest.raises(ReadOnlyDataError, match=r"setting \['port'\] would change firewall_rules\[0\]"):
        rule["port"] = 22
    with pytest.raises(ReadOnlyDataError, match=r"append\(\) would change firewall_rules\[0\]\.sources"):
        rule["sources"].append("0.0.0.0/0")
    with pytest.raises(ReadOnlyDataError, match=r"update\(\) would change hx_members"):
        data["hx_members"].update({})
    for change in (lambda: data["hx_admin_networks"].sort(), lambda: data["hx_admin_networks"].__iadd__(["x"])):
        with pytest.raises(ReadOnlyDataError):
            change()
    assert env.host_data("db1")["firewall_rules"][0]["port"] == 9100


def test_a_derived_value_is_an_ordinary_one(env):
    data = env.host_data("web1")
    more = [*data["hx_admin_networks"], "192.0.2.0/24"]
    more.append("198.51.100.0/24")  # a new list: the deploy's own
    merged = {**data["firewall_rules"][0], "port": 9200}
    assert type(more) is list and merged["port"] == 9200 and data["firewall_rules"][0]["port"] == 9100


def test_component_data_and_defaults_are_read_only():
    """What a deploy gets from component_data, also with plain data from someone else's inventory."""
    data = component_data(FIREWALL, {**FIREWALL_DEFAULTS, "firewall_rules": [{"port": 9100}]})
    assert isinstance(data, FrozenDict)
    with pytest.raises(ReadOnlyDataError, match=r"setting \['port'\] would change firewall_rules\[0\]"):
        data["firewall_rules"][0]["port"] = 22
    with pytest.raises(ReadOnlyDataError, match="firewall_enabled"):
        data["firewall_enabled"] = False
    with pytest.raises(ReadOnlyDataError, match="firewall_trusted_sources"):
        FIREWALL_DEFAULTS["firewall_trusted_sources"].append("10.0.0.0/8")  # the module's DEFAULTS too
    assert isinstance(FIREWALL_DEFAULTS["firewall_rules"], FrozenList)


def test_frozen_values_read_as_what_they_were():
    value = freeze({"a": [1, {"b": [2]}], "c": (3, [4])}, "k")
    assert value == {"a": [1, {"b": [2]}], "c": (3, [4])} and isinstance(value, dict)
    assert json.loads(json.dumps(value)) == {"a": [1, {"b": [2]}], "c": [3, [4]]}
    assert yaml.safe_load(yaml.safe_dump(value)) == {"a": [1, {"b": [2]}], "c": [3, [4]]}
    again = pickle.loads(pickle.dumps(value))
    assert again == value and isinstance(again["a"], FrozenList)
    assert copy.copy(value) is value and copy.deepcopy(value) is value  # immutable: a copy is itself
    assert freeze(value) is value and freeze_values({"x": value})["x"] is value  # shared, not copied
    plain = list(value["a"])
    plain.append(5)
    assert value["a"] == [1, {"b": [2]}]


def test_plain_pyinfra_cli_reports_an_in_place_change(project):
    """Under pyinfra's own CLI (its host.data hands out shallow copies): the deploy file's change fails."""
    inventory = INVENTORY.replace(
        '"web1": {"address": "192.0.2.10", "groups": ["web_servers"], "data": {"nginx_http_port": 8080}},',
        '"@local": {"groups": ["web_servers"]},',
    )
    project("inventories/demo.py", inventory)
    project("inventories/group_vars/all.yml", GROUP_VARS)
    project("deploys/mutate.py", "from pyinfra import host\nhost.data.hx_admin_networks.append('192.0.2.0/24')\n")
    out = subprocess.run(
        [sys.executable, "-m", "pyinfra", "inventories/demo.py", "deploys/mutate.py", "--dry", "--limit", "@local"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    combined = out.stdout + out.stderr
    assert out.returncode != 0, combined
    assert "host data is read-only: append() would change hx_admin_networks in place" in combined
    assert "Traceback" not in combined
