"""The offline plan of the running lab: the same bytes with every cache off, and the lab CA in it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def test_the_lab_plan_is_the_same_with_every_cache_off(lab, tmp_path):
    plans = {}
    for memo in ("on", "off"):
        out = tmp_path / memo
        lab.env["HXINFRA_MEMO"] = memo
        try:
            lab.hxinfra("plan", "--env", "lab", "--out", str(out), "--jobs", "1")
        finally:
            lab.env.pop("HXINFRA_MEMO")
        plans[memo] = {p.name: p.read_bytes() for p in sorted(out.glob("*.plan"))}
    assert plans["on"] and plans["on"].keys() == plans["off"].keys()
    assert [name for name in plans["on"] if plans["on"][name] != plans["off"][name]] == []
    # the lab CA is a file the data names: read when the inventory loaded, planned as its anchor
    ca = Path(lab.ca_file).read_text().strip()
    assert all(ca in text.decode() for text in plans["on"].values())
