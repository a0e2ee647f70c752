"""Strict rendering, and what a render keeps between hosts (hxinfra.render)."""

from __future__ import annotations

import os

import pytest

from hxinfra import render as r


def test_a_render_is_kept_by_the_values_its_template_reads(tmp_path):
    (tmp_path / "t.j2").write_text("port {{ port }}\n")
    a = r.render(tmp_path, "t.j2", {"port": 80, "unread": "x"})
    b = r.render(tmp_path, "t.j2", r.template_context({"port": 80}, {"unread": "y"}))
    assert a == b == "# managed by hxinfra (templates/t.j2); local changes are overwritten\nport 80\n"
    assert r.render(tmp_path, "t.j2", {"port": True}).endswith("port True\n")  # True == 1, but not the same file
    assert r.render(tmp_path, "t.j2", {"port": 1}).endswith("port 1\n")
    with pytest.raises(r.TemplateError, match="undefined variable"):
        r.render(tmp_path, "t.j2", {})


def test_an_edited_template_is_read_again(tmp_path, monkeypatch):
    path = tmp_path / "t.j2"
    path.write_text("one {{ x }}\n")
    assert r.render(tmp_path, "t.j2", {"x": 1}).endswith("one 1\n")
    path.write_text("two {{ x }} {{ y }}\n")
    stamp = path.stat().st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(stamp, stamp))
    later = r.time.monotonic() + 2  # the file is looked at again at most once a second
    monkeypatch.setattr(r.time, "monotonic", lambda: later)
    assert r.render(tmp_path, "t.j2", {"x": 1, "y": 2}).endswith("two 1 2\n")
