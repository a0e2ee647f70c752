"""The dashboard: a static site built from the run history, read back as a browser's DOM would be."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from hxinfra import history
from hxinfra.history import HostResult, Run


class Page(HTMLParser):
    """The rows a page holds (their data-* attributes), its links, and whether it loads anything."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.links: set[str] = set()
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and any(k.startswith("data-") for k in a):
            self.rows.append(a)
        if tag == "a" and "href" in a:
            self.links.add(a["href"].split("#")[0])
        if tag in ("script", "link", "img", "iframe") or (tag == "a" and "://" in a.get("href", "")):
            self.external.append(tag)


def read(path) -> Page:
    p = Page()
    p.feed(path.read_text())
    return p


@pytest.fixture
def fleet_history(tmp_path, monkeypatch):
    monkeypatch.setenv(history.STATE_ENV, str(tmp_path / "state"))
    t = 1_780_000_000.0
    runs = [
        (
            Run(
                "deploy",
                env="lab",
                target="site",
                started=t,
                hosts=[HostResult("web1", "changed"), HostResult("db1", "changed")],
            ),
            0,
        ),
        (
            Run(
                "drift",
                env="lab",
                target="site",
                started=t + 60,
                hosts=[
                    HostResult("web1", "drifted", items=[("path", "/etc/x", "content")]),
                    HostResult("db1", "clean"),
                ],
            ),
            2,
        ),
        (
            Run(
                "health",
                env="lab",
                started=t + 120,
                hosts=[HostResult("web1", "ok"), HostResult("db1", "failed", cause="postgresql")],
            ),
            1,
        ),
        (
            Run(
                "deploy",
                env="staging",
                target="nginx",
                started=t + 180,
                hosts=[HostResult("s-web1", "failed", cause="No space left")],
            ),
            1,
        ),
    ]
    monkeypatch.setenv(history.PROJECT_ENV, "hx-dashboard-test")  # the project the CLI below reads as its own
    ids = [history.write(r, code, tmp_path) for r, code in runs]
    # another project's run on the same controller: never on this project's pages
    other = tmp_path / "other-checkout"
    other.mkdir()
    monkeypatch.delenv(history.PROJECT_ENV)
    history.write(
        Run("deploy", env="elsewhere", target="site", started=t + 200, hosts=[HostResult("x1", "ok")]), 0, other
    )
    monkeypatch.setenv(history.PROJECT_ENV, "hx-dashboard-test")
    return ids


def test_the_site_shows_every_environment_host_state_and_run(fleet_history, tmp_path):
    from hxinfra.cli import main

    out = tmp_path / "site"
    r = CliRunner().invoke(main, ["dashboard", "--out", str(out)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "env-lab.html",
        "env-staging.html",
        "host-lab-db1.html",
        "host-lab-web1.html",
        "host-staging-s-web1.html",
        "index.html",
    ]
    lab = read(out / "env-lab.html")
    states = {row["data-host"]: row["data-state"] for row in lab.rows if "data-host" in row}
    assert states == {"web1": "drifted", "db1": "failed"}  # the worst of the last drift and health
    assert [row["data-outcome"] for row in lab.rows if "data-run" in row] == ["failed", "drift", "changed"]
    assert "host-lab-web1.html" in lab.links and "index.html" in lab.links
    text = (out / "env-lab.html").read_text()
    assert "1 of 2 host(s) drifted" in text  # the drift chart's bar
    web1 = read(out / "host-lab-web1.html")
    assert [row["data-status"] for row in web1.rows] == ["ok", "drifted", "changed"]
    index = read(out / "index.html")
    assert {"env-lab.html", "env-staging.html"} <= index.links
    for page in out.iterdir():
        assert read(page).external == [], page  # nothing fetched: it opens from a file
        assert 'name="viewport"' in page.read_text()
    every = tmp_path / "every"
    r = CliRunner().invoke(main, ["dashboard", "--out", str(every), "--all-projects"])
    assert r.exit_code == 0 and (every / "env-elsewhere.html").is_file(), r.output  # the other project's, asked for


def test_no_history_yet_is_a_dashboard_that_says_so(tmp_path, monkeypatch):
    """Before the first run (a new controller, a CI job's first day) the site is built all the same:
    it says there are no runs yet, and reading the history creates nothing."""
    from hxinfra.cli import main

    monkeypatch.setenv(history.STATE_ENV, str(tmp_path / "empty"))
    r = CliRunner().invoke(main, ["dashboard", "--out", str(tmp_path / "site")])
    assert r.exit_code == 0, r.output
    assert "No runs yet." in (tmp_path / "site/index.html").read_text()
    assert not (tmp_path / "empty").exists()


def test_every_page_fits_a_desktop_and_a_phone_and_long_host_lists_are_folded(tmp_path, monkeypatch):
    """A fleet of 60 hosts with long names (4 drifted, one failed with a long unbroken cause), as
    Chromium lays it out at 1280 and 390 px: no page and no element scrolls sideways, even with
    every folded list opened; each run's 60 hosts are one folded line; the environment page shows
    the hosts that need a look and folds the clean ones."""
    from browser import layout

    from hxinfra.cli import main

    monkeypatch.setenv(history.STATE_ENV, str(tmp_path / "state"))
    monkeypatch.setenv(history.PROJECT_ENV, "hx-layout-test")
    names = [f"hx-application-server-number-{i:04d}.staging-eu-west.example.internal" for i in range(60)]
    bad = {names[i] for i in (3, 17, 31, 45)}
    cause = "sha256:" + "0123456789abcdef" * 20  # no space to break at
    t = 1_780_000_000.0
    for k in range(3):
        drift = [HostResult(n, "drifted" if n in bad else "clean", items=[("path", "/etc/x", "")]) for n in names]
        history.write(Run("drift", env="staging-eu-west", started=t + 100 * k, hosts=drift), 2, tmp_path)
        deploy = [HostResult(n, "failed", cause=cause) if n == names[0] else HostResult(n, "changed") for n in names]
        history.write(
            Run("deploy", env="staging-eu-west", target="site", started=t + 100 * k + 50, hosts=deploy), 1, tmp_path
        )
    site = tmp_path / "site"
    r = CliRunner().invoke(main, ["dashboard", "--out", str(site)])
    assert r.exit_code == 0, r.output
    env_page = site / "env-staging-eu-west.html"
    page = read(env_page)
    shown = [row["data-host"] for row in page.rows if "data-host" in row]
    assert set(shown) == set(names) and len(shown) == 60  # every host is on the page, once
    text = env_page.read_text()
    assert 'data-folded="56"' in text and "56 more host(s), all clean" in text  # the 4 drifted stay open
    assert text.index(names[3]) < text.index('data-folded="56"') < text.index(names[4])
    index = (site / "index.html").read_text()
    assert index.count('<details data-folded="60">') == 6  # every run's host list: one line until opened
    failed = site / f"host-staging-eu-west-{names[0]}.html"
    for path in (site / "index.html", env_page, failed):
        for width in (1280, 390):
            seen = layout(path, width)
            assert seen["width"] == width and seen["page"] == width, (path.name, seen)
            assert seen["scrolling"] == [] and seen["beyond"] == [], (path.name, width, seen)
