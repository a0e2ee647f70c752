"""``hxinfra watch``: scheduled drift, health and certificate checks, with alerts on a change of state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from hxinfra import history
from hxinfra import watch as w
from hxinfra.cli.common import ENV_OPTION, _load, echo_json, extra_vars_option
from hxinfra.cli.vault import vault_options
from hxinfra.errors import HxError
from hxinfra.history import HostResult
from hxinfra.paths import project_root
from hxinfra.secrets import Keyring, keyring_from_sources, redact


def _unit_dir(given: Path | None) -> tuple[Path, bool]:
    """Where the units go, and whether they are a user's (``systemctl --user``)."""
    if given is not None:
        return given, os.getuid() != 0
    if os.getuid() == 0:
        return Path("/etc/systemd/system"), False
    return Path.home() / ".config" / "systemd" / "user", True


def _systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


def _systemctl(user: bool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *(["--user"] if user else []), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _checks(value: str) -> tuple[str, ...]:
    checks = tuple(c.strip() for c in value.split(",") if c.strip())
    bad = [c for c in checks if c not in w.CHECKS]
    if bad or not checks:
        raise click.BadParameter(f"some of {', '.join(w.CHECKS)}, not {', '.join(bad) or 'none'}")
    return checks


CHECKS_OPTION = click.option(
    "--checks",
    default=",".join(w.CHECKS),
    show_default=True,
    callback=lambda _ctx, _param, value: _checks(value),
    help="The checks to run, comma-separated: drift, health, certs (certificates under 30 days).",
)
LIMIT_OPTION = click.option(
    "--limit", "-l", "limit", default="", metavar="PATTERN", help="Only these hosts (an Ansible host pattern)."
)
UNIT_DIR_OPTION = click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HXINFRA_WATCH_UNIT_DIR",
    show_envvar=True,
    default=None,
    help="Where the systemd units go. Default: /etc/systemd/system (root), else ~/.config/systemd/user.",
)


def channel_data(env: Any) -> dict[str, Any]:
    """The environment's watch settings: its own data, else what its hosts carry (group_vars/all)."""
    if "hx_watch_channels" in env.data:
        return dict(env.data)
    for host in env.hosts:
        return dict(env.host_data(host))
    return dict(env.data)


@click.group("watch")
def watch() -> None:
    """Watch the fleet between runs: a systemd timer on this controller runs drift, health and
    certificate checks and alerts on a change of state (new drift, a host unhealthy, a certificate
    under 30 days, a check that failed, and each one's resolution) to the environment's
    ``hx_watch_channels`` (a webhook, e-mail over SMTP with STARTTLS; credentials as vault values).

    \b
    Examples:
      hxinfra watch install --env production --every 15m --vault-password-file /etc/hxinfra/vault-pass
      hxinfra watch status
      hxinfra watch run --env production          (what the timer runs; alerts included)
      hxinfra watch remove --env production
    """


@watch.command("install")
@ENV_OPTION
@click.option("--every", default="15m", show_default=True, help="How often: 5m to 24h (15m, 2h).")
@CHECKS_OPTION
@LIMIT_OPTION
@click.option(
    "--vault-password-file",
    "password_file",
    envvar="HXINFRA_VAULT_PASSWORD_FILE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, resolve_path=True),
    default=None,
    help="The vault password file the scheduled runs read (not readable by others).",
)
@UNIT_DIR_OPTION
@click.option("--no-enable", is_flag=True, help="Write the units only; do not start the timer.")
def install(
    env_name: str,
    every: str,
    checks: tuple[str, ...],
    limit: str,
    password_file: str | None,
    unit_dir: Path | None,
    no_enable: bool,
) -> None:
    """Write and start the systemd service and timer that watch ENV.

    The environment is loaded and its channels are checked first (with the vault password file
    the runs will use), so a mistake shows now, not at 3 a.m."""
    root = project_root()
    if password_file and os.stat(password_file).st_mode & 0o077:
        raise HxError(f"{password_file} is readable by others: chmod 600 it before a timer reads it")
    keyring = keyring_from_sources((), (password_file,) if password_file else (), False, root)
    env = _load(env_name, keyring=keyring)
    targets = w.channels(channel_data(env))
    files = w.units(env_name, every, checks, sys.executable, root, history.state_dir(), password_file or "", limit)
    directory, user = _unit_dir(unit_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)
    timer = f"{w.unit_name(env_name)}.timer"
    click.echo(f"watch: {env_name} every {every} ({', '.join(checks)}): {', '.join(str(directory / f) for f in files)}")
    if not targets:
        click.echo(
            "watch: warning: no hx_watch_channels for this environment: conditions are recorded, not sent", err=True
        )
    if no_enable:
        click.echo(f"watch: not enabled (systemctl{' --user' if user else ''} enable --now {timer})", err=True)
        return
    if not _systemd_runs():
        raise HxError(f"systemd does not run on this machine: units written, {timer} not started")
    for args in (("daemon-reload",), ("enable", "--now", timer)):
        r = _systemctl(user, *args)
        if r.returncode != 0:
            raise HxError(f"systemctl {' '.join(args)}: {r.stderr.strip()}")
    click.echo(f"watch: {timer} enabled and started")


@watch.command("remove")
@ENV_OPTION
@UNIT_DIR_OPTION
def remove(env_name: str, unit_dir: Path | None) -> None:
    """Stop and remove ENV's watch (its history and alerts stay)."""
    directory, user = _unit_dir(unit_dir)
    name = w.unit_name(env_name)
    if not (directory / f"{name}.timer").exists():
        raise HxError(f"no watch of {env_name} in {directory}")
    if _systemd_runs():
        _systemctl(user, "disable", "--now", f"{name}.timer")
    for suffix in (".timer", ".service"):
        (directory / f"{name}{suffix}").unlink(missing_ok=True)
    if _systemd_runs():
        _systemctl(user, "daemon-reload")
    click.echo(f"watch: {env_name} removed from {directory}")


@watch.command("status")
@click.option("--env", "-E", "env_name", default=None, help="Only this environment's watch.")
@UNIT_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the watches as JSON to stdout.")
def status(env_name: str | None, unit_dir: Path | None, as_json: bool) -> None:
    """The installed watches: schedule, checks, the timer's state, the last run and what fires."""
    directory, user = _unit_dir(unit_dir)
    project = history.project_of(project_root())
    rows: list[dict[str, Any]] = []
    for found in w.installed(directory) if directory.is_dir() else []:
        if env_name and found["env"] != env_name:
            continue
        timer: dict[str, str] = {"state": "systemd not running here"}
        if _systemd_runs():
            r = _systemctl(
                user, "show", f"{w.unit_name(found['env'])}.timer", "-p", "ActiveState", "-p", "UnitFileState"
            )
            timer = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
            timer["state"] = f"{timer.get('ActiveState', '?')}, {timer.get('UnitFileState', '?')}"
        last = next(
            (r for r in history.runs(env=found["env"], project=project, limit=200) if r["verb"] == "watch"), None
        )
        rows.append(
            {
                **found,
                "timer": timer["state"],
                "last_run": {"id": last["id"], "started": last["started"], "outcome": last["outcome"]}
                if last
                else None,
                "firing": history.firing(project, found["env"]),
            }
        )
    if as_json:
        echo_json(redact(json.dumps(rows, indent=2)))
        return
    if not rows:
        click.echo(f"no watch installed in {directory}", err=True)
        return
    for row in rows:
        last = row["last_run"]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["started"])) if last else "never"
        click.echo(
            f"{row['env']:<12} every {row['every']:<5} {row['checks']:<20} timer {row['timer']:<18} "
            f"last run {when}{' ' + last['outcome'] if last else ''}  firing {len(row['firing'])}"
        )
        for a in row["firing"]:
            click.echo(redact(f"  FIRING {a['key']}: {a['summary']}"))


def _run_checks(env_name: str, checks: tuple[str, ...], limit: str) -> list[w.Condition]:
    """Each check as its own verb would run it (and record it), in a process of its own."""
    now: list[w.Condition] = []
    for check in checks:
        argv = [sys.executable, "-m", "hxinfra", *w.check_argv(check, env_name, limit)]
        click.echo(f"watch: {w.describe(argv[2:])}", err=True)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
            now += w.conditions(check, r.returncode, r.stdout, r.stderr)
        except subprocess.TimeoutExpired:
            now += w.conditions(check, 1, "", "did not finish within an hour")
    return now


@watch.command("run")
@ENV_OPTION
@CHECKS_OPTION
@LIMIT_OPTION
@extra_vars_option("Data over the inventory's for the watch itself (its channels: -e @channels.yml).")
@click.option("--json", "as_json", is_flag=True, help="Print what was found and sent as JSON to stdout.")
@vault_options()
@history.recorded("watch", target=lambda kw: ",".join(kw.get("checks") or ()))
def run_cmd(
    env_name: str, checks: tuple[str, ...], limit: str, extra: tuple[str, ...], as_json: bool, keyring: Keyring
) -> None:
    """Run ENV's checks once and send what changed since the last run (the timer's command).

    Exit 1 when a check could not run or a channel could not be reached (the news is then sent
    again by the next run); conditions that fire are alerts, not a failure of the watch."""
    env = _load(env_name, extra, keyring=keyring)
    targets = w.channels(channel_data(env))
    project = history.project_of(project_root())
    now = _run_checks(env_name, checks, limit)
    try:
        before = {
            a["key"]: w.Condition(a["key"], a["kind"], a["host"], a["summary"])
            for a in history.firing(project, env_name)
        }
    except history.HistoryError as e:
        raise HxError(f"the watch needs its history to know what is new: {e}") from None
    news = w.news(before, now, checks)
    failed = w.deliver(targets, env_name, news) if news else []
    if not failed:
        try:
            history.set_firing(
                project,
                env_name,
                [(c.key, c.kind, c.host, c.summary) for c in news.firing],
                [c.key for c in news.resolved],
            )
        except history.HistoryError as e:
            failed.append(str(e))
    by_host: dict[str, list[w.Condition]] = {}
    for c in now:
        by_host.setdefault(c.host or "-", []).append(c)
    run = history.current()
    history.set_hosts(
        [
            HostResult(h, "alerting", failed=len(cs), cause=redact(cs[0].summary)[:300])
            for h, cs in sorted(by_host.items())
        ]
    )
    broken = failed or any(c.kind == "check-failed" and not c.host for c in now)
    if run is not None:
        run.outcome = "failed" if broken else ("alerting" if now else "ok")
    for c in news.firing:
        click.echo(redact(f"watch: FIRING {c.key}: {c.summary}"), err=True)
    for c in news.resolved:
        click.echo(redact(f"watch: RESOLVED {c.key}"), err=True)
    for why in failed:
        click.echo(f"hxinfra: error: not sent: {redact(why)}", err=True)
    click.echo(
        f"watch: {env_name}: {len(now)} condition(s), {len(news.firing)} new, {len(news.resolved)} resolved, "
        f"sent to {len(targets) - len(failed) if news else 0} of {len(targets)} channel(s)",
        err=True,
    )
    if as_json:
        doc = {
            "env": env_name,
            "conditions": [c.__dict__ for c in now],
            "firing": [c.key for c in news.firing],
            "resolved": [c.key for c in news.resolved],
            "not_sent": failed,
        }
        echo_json(redact(json.dumps(doc, indent=2)))
    if broken:
        raise SystemExit(1)
