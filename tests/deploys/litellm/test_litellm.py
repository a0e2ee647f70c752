"""The LiteLLM component's desired files, computed offline from host data alone, and the wheelhouse
closure that keeps a host's markers from missing a dependency."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

from deploys.litellm import COMPONENT
from deploys.litellm.config import DEFAULTS, check_command, check_data, desired_config, requirements
from hxinfra.render import TemplateError, systemd_environment
from hxinfra.wheelhouse import Target, missing

MASTER = "sk-master-0123456789abcdef"
PROVIDER = 'pr0v"ider\\key$HOME'
BASE = {
    **DEFAULTS,
    "hx_domain": "lab.test",
    "hx_environment": "lab",
    "ssh_hostname": "10.0.0.20",
    "litellm_master_key": MASTER,
    "litellm_models": [
        {
            "name": "hx-chat",
            "model": "openai/hx-lab-model",
            "api_base": "http://127.0.0.1:8000/v1",
            "api_key_env": "OPENAI_API_KEY",
        }
    ],
    "litellm_provider_keys": {"OPENAI_API_KEY": PROVIDER},
}


def files(data):
    return {i.path: i for i in desired_config(data)}


def test_config_is_litellm_schema_and_names_secrets_only_by_environment():
    item = files(BASE)["/etc/litellm/config.yaml"]
    assert item.content.startswith("# managed by hxinfra")
    doc = yaml.safe_load(item.content)
    assert list(doc) == ["model_list", "litellm_settings", "router_settings", "general_settings"]
    assert doc["model_list"] == [
        {
            "model_name": "hx-chat",
            "litellm_params": {
                "model": "openai/hx-lab-model",
                "api_base": "http://127.0.0.1:8000/v1",
                "api_key": "os.environ/OPENAI_API_KEY",
            },
        }
    ]
    assert doc["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert "database_url" not in doc["general_settings"]
    assert MASTER not in item.content and "pr0v" not in item.content
    assert (item.mode, item.group) == ("0640", "litellm")


def test_environment_file_holds_the_secrets_privately_and_quoted():
    env = files({**BASE, "litellm_database_url": "postgresql://litellm:pw@db/litellm"})["/etc/litellm/litellm.env"]
    assert env.sensitive and env.mode == "0640" and env.group == "litellm" and env.private
    lines = env.content.splitlines()
    assert f'LITELLM_MASTER_KEY="{MASTER}"' in lines
    assert 'OPENAI_API_KEY="pr0v\\"ider\\\\key$HOME"' in lines  # systemd's quoting: one value, one line
    assert 'DATABASE_URL="postgresql://litellm:pw@db/litellm"' in lines
    assert 'LITELLM_LOCAL_MODEL_COST_MAP="True"' in lines


def test_systemd_environment_refuses_what_would_add_a_line_or_a_variable():
    with pytest.raises(TemplateError, match="one line"):
        systemd_environment({"A": "x\nB=y"})
    with pytest.raises(TemplateError, match="plain name"):
        systemd_environment({"A B": "x"})


def test_unit_is_hardened_and_listens_on_the_hosts_address():
    unit = files(BASE)["/etc/systemd/system/litellm.service"].content
    assert "--host 10.0.0.20 --port 4000" in unit and "0.0.0.0" not in unit
    for line in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "User=litellm",
        "EnvironmentFile=/etc/litellm/litellm.env",
        "StateDirectory=litellm",
    ):
        assert line in unit.splitlines()
    explicit = files({**BASE, "litellm_listen_address": "0.0.0.0"})["/etc/systemd/system/litellm.service"].content
    assert "--host 0.0.0.0" in explicit


def test_trial_start_validates_on_loopback_with_the_new_files():
    cmd = check_command(BASE)
    assert "--config /etc/litellm/config.yaml --host 127.0.0.1 --port 4099" in cmd
    assert "EnvironmentFile=/etc/litellm/litellm.env" in cmd and "User=litellm" in cmd
    assert "http://127.0.0.1:4099/health/liveliness" in cmd
    assert MASTER not in cmd


def test_requirements_are_pinned():
    assert requirements(BASE) == ["litellm[proxy]==1.106.2", "prisma==0.15.0"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("litellm_master_key", "not-a-key", "must start with 'sk-'"),
        ("litellm_models", [{"name": "x", "model": "openai/m; rm -rf /"}], "provider/model"),
        (
            "litellm_models",
            [{"name": "x", "model": "openai/m", "api_key_env": "NOPE"}],
            "not a key of litellm_provider_keys",
        ),
        ("litellm_models", [{"name": "x", "model": "openai/m", "api_base": "http://u:p@h/v1"}], "not an http"),
        ("litellm_models", [{"name": "x", "modle": "openai/m"}], "unknown field"),
        ("litellm_provider_keys", {"bad name": "v"}, "variable name"),
        ("litellm_listen_address", "host; id", "IP"),
        ("litellm_settings", {"api_key": "sk-inline"}, "looks like a secret"),
        ("litellm_general_settings", {"x": "a\nb"}, "one line"),
        ("litellm_extra_requirements", ["prisma>=0.15"], "pinned"),
        ("litellm_install", "curl", "one of"),
    ],
)
def test_values_of_the_wrong_shape_are_refused(key, value, message):
    problems = dict(check_data({**BASE, key: value}))
    assert key in problems and message in problems[key]


def test_component_requires_a_master_key_and_targets_api_servers():
    assert "litellm_master_key" in COMPONENT.required and COMPONENT.groups == ("api_servers",)
    assert check_data(BASE) == []


def _wheel(directory: Path, name: str, version: str, requires: list[str]) -> None:
    path = directory / f"{name}-{version}-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)


def test_wheelhouse_closure_uses_the_hosts_markers(tmp_path):
    # redis needs async-timeout only below 3.11.3: the controller (3.11.7) skips it, a host on 3.11.2 not
    _wheel(tmp_path, "app", "1.0", ['redis>=5; extra == "proxy"', "pyyaml"])
    _wheel(tmp_path, "redis", "5.0", ['async-timeout>=4.0.3; python_full_version < "3.11.3"'])
    _wheel(tmp_path, "pyyaml", "6.0", [])
    assert missing(tmp_path, ["app[proxy]==1.0"], Target("3.11.7")) == []
    assert [str(r) for r in missing(tmp_path, ["app[proxy]==1.0"], Target("3.11.2"))] == ["async-timeout>=4.0.3"]
    assert missing(tmp_path, ["app==1.0"], Target("3.11.2")) == []  # without the extra, no redis at all
    assert [str(r) for r in missing(tmp_path, ["app==2.0"], Target("3.11.7"))] == ["app==2.0"]
