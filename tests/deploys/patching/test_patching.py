"""Patching's pure parts: which upgrades count as security ones, the verification script."""

from __future__ import annotations

import subprocess

import pytest

from deploys.patching.config import DEFAULTS, check_data, verify_script, wanted
from deploys.patching.operations import PendingUpgrades
from hxinfra.health import Check

APT_OUTPUT = """\
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable [all])
Conf libssl3 (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])
"""


def test_apts_own_simulation_is_read_and_security_upgrades_picked():
    from deploys.patching.config import PENDING

    script = PENDING.replace("apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null", "cat")
    out = subprocess.run(["bash", "-c", script], input=APT_OUTPUT, capture_output=True, text=True).stdout
    pending = PendingUpgrades().process(out.splitlines())
    assert pending == [
        ("libssl3", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", "Debian-Security:12/stable-security"),
        ("tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1", "Debian:12.11/stable"),
    ]
    assert wanted(pending, True) == ["libssl3"] and wanted(pending, False) == ["libssl3", "tzdata"]


def test_verification_names_what_fails_and_passes_when_everything_does():
    good = verify_script([Check("a", "true"), Check("b", "true")], 1)
    assert subprocess.run(["bash", "-c", good], capture_output=True, text=True).returncode == 0
    bad = subprocess.run(
        ["bash", "-c", verify_script([Check("a", "true"), Check("gateway answers", "false")], 1)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "failing: gateway answers" in bad.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"patching_reboot_timeout": 5}, ">= 30"),
        ({"patching_verify_seconds": -1}, ">= 0"),
    ],
)
def test_bad_values_are_refused(values, message):
    problems = check_data({**DEFAULTS, **values})
    assert problems and any(message in p for _, p in problems)
