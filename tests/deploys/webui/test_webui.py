"""The web UI component offline: its files from host data, the blue-green decision, pruning, the
artifact checks, and the release build."""

from __future__ import annotations

import hashlib
import importlib.util
import tarfile

import pytest
from conftest import ROOT

from deploys.webui import COMPONENT
from deploys.webui.config import DEFAULTS, check_data, database_url, desired_config, target, to_prune
from hxinfra.artifacts import ArtifactError, checksums, fetch
from hxinfra.validate import DataError

SHA = "a" * 64
SECRETS = {
    "webui_db_password": "p@ss:w/rd 1#?",
    "webui_gateway_key": "sk-gateway-key-123",
    "webui_session_secret": "session-secret-0123",
    "webui_jwt_secret": "jwt-secret-0123456",
}
BASE = {
    **DEFAULTS,
    **SECRETS,
    "hx_domain": "lab.test",
    "ssh_hostname": "10.0.0.40",
    "webui_version": "1.0.0",
    "webui_releases": {"1.0.0": SHA},
    "webui_db_host": "10.0.0.30",
    "webui_gateway_url": "https://10.0.0.20:4000",
}


def files(data):
    return {i.path: i for i in desired_config(data)}


def test_environment_file_holds_secrets_privately_with_an_encoded_database_url():
    env = files(BASE)["/etc/hx-webui/webui.env"]
    assert env.sensitive and env.mode == "0640" and env.group == "hx-webui"
    assert (
        'HX_DATABASE_URL="postgresql://hx_webui:p%40ss%3Aw%2Frd%201%23%3F@10.0.0.30:5432/hx_webui'
        '?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt"'
    ) in env.content.splitlines()
    assert 'HX_GATEWAY_URL="https://10.0.0.20:4000"' in env.content and 'HX_LISTEN="10.0.0.40"' in env.content
    for name in ("blue", "green"):
        colour = files(BASE)[f"/etc/hx-webui/{name}.env"]
        assert not colour.sensitive and f'HX_COLOR="{name}"' in colour.content
    assert 'PORT="3001"' in files(BASE)["/etc/hx-webui/green.env"].content
    assert database_url(BASE).count("p%40ss") == 1


def test_unit_is_a_hardened_template_per_colour():
    unit = files(BASE)["/etc/systemd/system/hx-webui@.service"].content.splitlines()
    for line in (
        "User=hx-webui",
        "EnvironmentFile=/etc/hx-webui/webui.env",
        "EnvironmentFile=/etc/hx-webui/%i.env",
        "WorkingDirectory=/opt/hx-webui/%i",
        "ExecStart=/usr/bin/python3 app.py",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ):
        assert line in unit


@pytest.mark.parametrize(
    ("state", "version", "expected"),
    [
        ({}, "1.0.0", ("blue", "1.0.0")),  # a new host
        ({"active": "blue", "slots": {"blue": "1.0.0"}}, "1.0.0", ("blue", "1.0.0")),  # as it is
        ({"active": "blue", "slots": {"blue": "1.0.0"}}, "1.1.0", ("green", "1.1.0")),  # to the idle colour
        ({"active": "green", "slots": {"blue": "1.0.0", "green": "1.1.0"}}, "1.2.0", ("blue", "1.2.0")),
        (
            {"active": "green", "slots": {"blue": "1.0.0", "green": "1.1.0"}},
            "1.0.0",
            ("blue", "1.0.0"),
        ),  # a switch back
        ({"active": "green", "slots": {"blue": "1.0.0", "green": "1.1.0"}}, "previous", ("blue", "1.0.0")),
    ],
)
def test_a_release_goes_to_the_colour_that_does_not_serve(state, version, expected):
    assert target(state, version) == expected


def test_previous_needs_a_previous_release():
    with pytest.raises(DataError, match="no previous release"):
        target({"active": "blue", "slots": {"blue": "1.0.0"}}, "previous")


def test_pruning_keeps_the_newest_and_never_a_colours_release():
    state = {"releases": {"0.9": 1, "1.0": 2, "1.1": 3, "1.2": 4, "1.3": 5}}
    assert to_prune(state, 3, {"1.3", "1.2"}) == ["1.0", "0.9"]
    assert to_prune(state, 3, {"0.9", "1.3"}) == ["1.1", "1.0"]  # an old release a colour points to stays
    assert to_prune(state, 2, {"0.9", "1.0", "1.3"}) == ["1.2", "1.1"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("webui_session_secret", "change-me-in-production", "placeholder"),
        ("webui_jwt_secret", "short", "too short"),
        ("webui_version", "../../etc", "not a version"),
        ("webui_version", "9.9.9", "not in webui_releases"),
        ("webui_releases", {"1.0.0": "abc"}, "not a sha256"),
        ("webui_ports", {"blue": 3000, "green": 3000}, "two different ports"),
        ("webui_ports", {"blue": 3000, "red": 3001}, "not one of blue, green"),
        ("webui_exec", "python3 app.py; rm -rf /", "absolute program"),
        ("webui_artifact", "http://example.test/x.tar.gz", "https"),
        ("webui_artifact", "../outside/{version}.tgz", "plain path"),
        ("webui_gateway_url", "http://user:pw@h:4000", "not an http"),
        ("webui_gateway_url", "http://10.0.0.20:4000", "over TLS"),
        ("webui_gateway_ca_file", "relative.pem", "webui_gateway_ca_file"),
        ("webui_db_host", "db; id", "webui_db_host"),
    ],
)
def test_values_of_the_wrong_shape_are_refused(key, value, message):
    problems = dict(check_data({**BASE, key: value}))
    assert key in problems and message in problems[key]


def test_component_requires_its_secrets_and_targets_application_servers():
    assert set(COMPONENT.required) == set(SECRETS) and COMPONENT.groups == ("application_servers",)
    assert check_data(BASE) == []


def _build():
    spec = importlib.util.spec_from_file_location("build", ROOT / "apps" / "hx-webui" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def test_release_build_is_reproducible_and_checked_by_checksum(tmp_path):
    build = _build()
    a, sha_a = build("2.0.0", tmp_path / "a")
    b, sha_b = build("2.0.0", tmp_path / "b")
    assert sha_a == sha_b == hashlib.sha256(a.read_bytes()).hexdigest() and a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        assert sorted(tar.getnames()) == ["VERSION", "app.py"]
        assert tar.extractfile("VERSION").read() == b"2.0.0\n"
    assert checksums(tmp_path / "a", "hx-webui") == {"2.0.0": sha_a}
    assert fetch(str(a), sha_a, tmp_path) == a
    with pytest.raises(ArtifactError, match="is not the expected"):
        fetch(str(a), "0" * 64, tmp_path)
    with pytest.raises(ArtifactError, match="no such file"):
        fetch("missing.tar.gz", sha_a, tmp_path)


def test_every_environment_names_a_release_that_the_build_makes(tmp_path):
    """The fleet's data pins release 1.0.0 by the checksum of what apps/hx-webui builds."""
    import yaml

    data = yaml.safe_load((ROOT / "inventories/group_vars/application_servers.yml").read_text())
    _, sha = _build()(data["webui_version"], tmp_path)
    assert data["webui_releases"][data["webui_version"]] == sha


def test_the_guides_deployment_color_names_the_colour():
    state = {"active": "blue", "slots": {"blue": "1.0.0", "green": "0.9.0"}}
    assert target(state, "1.1.0", "green") == ("green", "1.1.0")
    assert target(state, "1.1.0", "blue") == ("blue", "1.1.0")  # in place, as asked
    assert target(state, "previous", "green") == ("green", "0.9.0")
    with pytest.raises(DataError, match="green colour holds no release"):
        target({"active": "blue", "slots": {"blue": "1.0.0"}}, "previous", "green")
    assert dict(check_data({**BASE, "webui_deployment_color": "red"}))["webui_deployment_color"].endswith(
        "is not one of , blue, green"
    )
    assert COMPONENT.ansible["deployment_color"] == COMPONENT.ansible["active_color"] == "webui_deployment_color"
