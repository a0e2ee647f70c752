"""What a host prints never becomes a controller path unchecked, and never crashes a run: a backup id
that climbs, file names with '..' or '/', a SHA256SUMS that lists other names, numbers that are not
numbers. (The same hosts, for real, in tests/lab/test_hostile_lab.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hxinfra import health
from hxinfra.adhoc import HostResult, inside
from hxinfra.cli import backup
from hxinfra.cli.logs import parse as logs_parse
from hxinfra.errors import HxError
from hxinfra.options import RunOptions

GOOD = {"config.tar.gz.gpg": b"config", "pg-hx_webui.dump.gpg": b"dump"}


def sums(files: dict[str, bytes]) -> bytes:
    return b"".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n".encode() for k, v in files.items())


class FakeSession:
    """A session whose one host lists ``names`` and serves ``files`` (what a hostile host may say)."""

    def __init__(self, names: list[str], files: dict[str, bytes]) -> None:
        self.names, self.files, self.fetched = names, files, []

    def run_on(self, host: str, command: str) -> HostResult:
        return HostResult(host, stdout=list(self.names))

    def fetch_one(self, host: str, src: str, target: Path) -> Path | None:
        self.fetched.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[src.rsplit("/", 1)[1]])
        return target


class FakeEnv:
    def host_data(self, host: str, with_defaults: bool = False) -> dict[str, str]:
        return {"backup_dir": "/var/backups/hx"}


ID = "20261201T023000Z"


def copy(tmp_path: Path, names: list[str], files: dict[str, bytes]) -> tuple[dict, FakeSession]:
    session = FakeSession(names, files)
    return backup._copy(session, FakeEnv(), "hx-db-01", ID, tmp_path / "dest"), session  # type: ignore[arg-type]


def test_a_whole_backup_is_copied_and_checked(tmp_path):
    files = {**GOOD, "SHA256SUMS": sums(GOOD)}
    result, _ = copy(tmp_path, sorted(files), files)
    assert "checksums ok" in result["detail"] and result.get("ok", True)
    assert (tmp_path / "dest/hx-db-01" / ID / "config.tar.gz.gpg").read_bytes() == b"config"


@pytest.mark.parametrize(
    "evil",
    ["../../../../../../tmp/x/PWNED-rel", "/tmp/x/PWNED-abs", "..", ".", "a/b", "", " config", "x\nSHA256SUMS"],
)
def test_a_listed_name_that_is_not_one_file_name_fails_the_host(tmp_path, evil):
    files = {**GOOD, "SHA256SUMS": sums(GOOD)}
    result, session = copy(tmp_path, [*sorted(files), evil], {**files, evil.rsplit("/", 1)[-1]: b"pwned"})
    assert result["ok"] is False and "not single file names" in result["detail"]
    assert session.fetched == []  # nothing was copied at all
    assert not list(tmp_path.rglob("PWNED*"))


def test_the_copied_set_is_exactly_what_sha256sums_lists(tmp_path):
    extra = {**GOOD, "unlisted.bin": b"x"}
    files = {**extra, "SHA256SUMS": sums(GOOD)}
    result, _ = copy(tmp_path, sorted(files), files)
    assert result["ok"] is False and "not listed: ['unlisted.bin']" in result["detail"]
    # a SHA256SUMS that names a climbing path
    files = {**GOOD, "SHA256SUMS": sums(GOOD) + b"0" * 64 + b"  ../../escape\n"}
    result, _ = copy(tmp_path, sorted(files), files)
    assert result["ok"] is False and "SHA256SUMS has a line" in result["detail"]
    assert not (tmp_path / "escape").exists()


def test_a_link_planted_in_the_destination_is_not_written_through(tmp_path):
    files = {**GOOD, "SHA256SUMS": sums(GOOD)}
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "hx-db-01").symlink_to(outside)
    result, _ = copy(tmp_path, sorted(files), files)
    assert result["ok"] is False and "outside" in result["detail"]
    assert list(outside.iterdir()) == []


def test_inside_refuses_every_way_out(tmp_path):
    assert inside(tmp_path, "hx-db-01", "etc/hosts") == tmp_path / "hx-db-01" / "etc/hosts"
    for parts in (("..",), ("a", "../../b"), ("/etc/passwd",), ("",), ("a\0b",)):
        with pytest.raises(HxError):
            inside(tmp_path, *parts)


@pytest.mark.parametrize(
    "line", ["mem_used_pct=²", "mem_used_pct=١٢", "uptime=12x", "load=0.1 x", "load=nan", "load=", "disk=/ ²"]
)
def test_junk_numbers_are_a_finding_for_that_host_not_a_crash(line):
    lines = ["uptime=100", "cpus=2", "mem_total_mb=100", "load=0.1 0.2 0.3", line]
    basics = health.basics(lines)
    assert basics["unparsed"] == [line]
    out = [*lines, f"{health.MARK} {health.BASICS} 0"]
    result = health.parse("hx-web-01", [], out, 90)
    assert not result.ok and "the host's basics read as numbers" in result.failures
    assert health.report_table([result]) and health.report_html([result], "t")  # the reports still render
    assert health.parse("h", [], [f"{health.MARK} ² 0", f"{health.MARK} 1² 0"], 90).checks  # junk markers: ignored


def test_junk_log_counts_are_kept_aside():
    found = logs_parse(["errors=²", "auth_failures=3"])
    assert found["errors"] == 0 and found["auth_failures"] == 3 and found["unparsed"] == ["errors=²"]


def test_target_hosts_selects_like_limit():
    assert RunOptions.from_cli(extra_args=["target_hosts=hx-web-01"]).limit == ("hx-web-01",)
    both = RunOptions.from_cli(extra_args=["target_hosts=web_servers"], limit=["hx-web-0*"])
    assert both.limit == ("web_servers:&hx-web-0*",) and "target_hosts" not in both.extra_vars
    with pytest.raises(HxError):
        RunOptions.from_cli(extra_args=['{"target_hosts": "a\\nb"}'])
