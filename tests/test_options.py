"""The run's options: built once from the command line, the tag rule (``step``), unknown tags, and
``component_data``, the one door through which a deploy reads its keys."""

from __future__ import annotations

import pytest

from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.errors import HxError
from hxinfra.frozen import FrozenDict, ReadOnlyDataError
from hxinfra.inventory import SEALED_KEY
from hxinfra.options import SKIP_TAGS_KEY, TAGS_KEY, RunOptions, TagSelection, selection_of, split_tags
from hxinfra.patterns import PatternError
from hxinfra.secrets import Vaulted, VaultError
from hxinfra.validate import DataError

WEB = Component(
    name="web",
    defaults={"web_port": 8080, "web_name": "front"},
    types={"web_port": int, "web_name": str},
    tags=("packages", "config", "service"),
)


def data(tags: object = None, skip: object = None) -> dict[str, object]:
    out: dict[str, object] = {}
    if tags is not None:
        out[TAGS_KEY] = tags
    if skip is not None:
        out[SKIP_TAGS_KEY] = skip
    return out


# ---------------------------------------------------------------------------- step: Ansible's tag rules


@pytest.mark.parametrize(
    ("tags", "skip", "step_tags", "runs"),
    [
        (None, None, ("config",), True),  # no selection: every step
        (["config"], None, ("config",), True),
        (["config"], None, ("packages",), False),
        (["web"], None, ("packages",), True),  # the component's name selects all its steps
        (["other"], None, ("config",), False),
        (["all"], None, ("service",), True),
        (None, ["config"], ("config",), False),
        (None, ["config"], ("service",), True),
        (None, ["web"], ("service",), False),  # skipping the component skips every step
        (["config"], ["config"], ("config",), False),  # a skip wins over a selection
        (["packages"], None, ("always",), True),  # always runs whatever is selected ...
        (None, ["always"], ("always",), False),  # ... unless always itself is skipped
        ("config,service", None, ("service",), True),  # pyinfra --data hx_tags=config,service
        ("config, service", None, ("packages",), False),
        (None, "packages", ("packages",), False),
        ((), (), ("config",), True),  # empty lists select everything, as no option does
    ],
)
def test_step_follows_ansibles_tag_rules(tags, skip, step_tags, runs):
    assert step(WEB, data(tags, skip), *step_tags) is runs


def test_a_step_tag_the_component_does_not_declare_is_a_programming_error():
    with pytest.raises(ValueError, match=r"component web: step tags \['restart'\] not declared"):
        step(WEB, data(), "restart")
    with pytest.raises(ValueError, match="not declared"):  # whatever the selection: every host, every run
        step(WEB, data(None, ["web"]), "restart")


def test_step_reads_frozen_host_data_as_well():
    frozen = FrozenDict({TAGS_KEY: ("config",)})
    assert step(WEB, frozen, "config") and not step(WEB, frozen, "service")


def test_selection_of_host_data_and_split_tags():
    assert selection_of(data("a,b", ["c", "a"])) == TagSelection(frozenset({"a", "b"}), frozenset({"c", "a"}))
    assert split_tags(("a,b", "c", "a", " ,")) == ("a", "b", "c")
    assert split_tags(None) == () and split_tags("") == ()


# ---------------------------------------------------------------------------- unknown tags


def test_unknown_tags_are_named_with_the_known_ones():
    options = RunOptions.from_cli(tags=["config,typo"], skip_tags=["nope"])
    with pytest.raises(HxError, match=r"unknown tag\(s\) nope, typo \(known: all, always, config, web\)"):
        options.check_tags({"web", "config"})
    RunOptions.from_cli(tags=["all", "web"], skip_tags=["always"]).check_tags({"web"})  # no error


# ---------------------------------------------------------------------------- RunOptions built once


def test_run_options_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "more.yml").write_text("web_port: 9000\n")
    options = RunOptions.from_cli(
        extra_args=["web_name=x other=y", "@more.yml", '{"n": [1, 2]}'],
        tags=["config,service", "config"],
        skip_tags=["packages"],
        limit=["web:!db"],
        serial="1,25%",
        shard="2/3",
        check=True,
        diff=True,
        max_fail_percentage=10,
        verbosity=2,
    )
    assert options.tags == ("config", "service") and options.skip_tags == ("packages",)
    assert options.extra_vars == {"web_name": "x", "other": "y", "web_port": 9000, "n": [1, 2]}
    assert options.serial == ("1", "25%") and options.shard == (2, 3) and options.shard_label == "2/3"
    assert options.limit == ("web:!db",) and options.check and options.diff and options.verbosity == 2
    layer = options.data_layer()
    assert layer[TAGS_KEY] == ["config", "service"] and layer[SKIP_TAGS_KEY] == ["packages"]
    assert selection_of(layer).runs({"web", "config"}) and not selection_of(layer).runs({"web", "packages"})
    with pytest.raises(ReadOnlyDataError):  # the options are passed as they are: nobody changes them
        options.extra_vars["n"].append(3)


def test_run_options_without_tags_add_no_selection_and_command_line_tags_win():
    assert TAGS_KEY not in RunOptions.from_cli(extra_args=["a=1"]).data_layer()
    layer = RunOptions.from_cli(extra_args=["hx_tags=service"], tags=["config"]).data_layer()
    assert layer[TAGS_KEY] == ["config"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"serial": "0%"}, PatternError, "serial value '0%'"),
        ({"shard": "4/3"}, PatternError, "shard '4/3'"),
        ({"extra_args": ["not-a-pair"]}, HxError, "is not key=value"),
        ({"tags": "config"}, TypeError, "tags: give a sequence"),
    ],
)
def test_bad_run_options_are_refused_before_anything_loads(kwargs, error, match):
    with pytest.raises(error, match=match):
        RunOptions.from_cli(**kwargs)


# ---------------------------------------------------------------------------- component_data


def test_component_data_gives_the_components_keys_with_defaults_read_only():
    out = component_data(WEB, {"web_port": 9090, "unrelated": 1})
    assert dict(out) == {"web_port": 9090, "web_name": "front"}  # defaults filled, other keys left out
    with pytest.raises(ReadOnlyDataError, match="web_port"):
        out["web_port"] = 1  # type: ignore[index]


def test_component_data_extra_keys_take_the_owners_defaults():
    out = component_data(WEB, {}, extra_keys=("hx_domain",), defaults={"hx_domain": "hx.example"})
    assert out["hx_domain"] == "hx.example"
    assert component_data(WEB, {"hx_domain": "lab.example"}, ("hx_domain",), {"hx_domain": "x"})["hx_domain"] == (
        "lab.example"
    )


def test_component_data_holds_every_value_to_one_line_naming_the_key_never_the_value():
    with pytest.raises(DataError, match="web_name") as caught:
        component_data(WEB, {"web_name": "front\nInclude /etc/evil"})
    assert "evil" not in str(caught.value)


def test_component_data_stops_on_a_sealed_vault_naming_the_file():
    with pytest.raises(VaultError, match="component web needs this host's vault data: group_vars/all/vault.yml"):
        component_data(WEB, {SEALED_KEY: ["group_vars/all/vault.yml"]})


def test_component_data_reveals_vaulted_values_masked_and_checks_them():
    checked: list[object] = []

    def check(values):
        checked.append(values["web_name"])
        return [("web_name", "must not be 'bad'")] if values["web_name"] == "bad" else []

    comp = Component(name="web", defaults={"web_name": ""}, check=check)
    good = component_data(comp, {"web_name": Vaulted.opened("front", "vault.yml", "web_name")})
    assert good["web_name"] == "front" and "front" not in repr(good["web_name"])
    with pytest.raises(DataError, match="web_name: must not be 'bad'"):
        component_data(comp, {"web_name": Vaulted.opened("bad", "vault.yml", "web_name")})
    assert checked == ["front", "bad"]  # a vaulted value is checked once it is decrypted
