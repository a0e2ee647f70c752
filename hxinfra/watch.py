"""Watching the fleet between runs: scheduled checks, alerts on a change of state, their channels.

``hxinfra watch install`` writes a systemd service and timer on the controller; each time the
timer fires, ``hxinfra watch run`` runs the environment's checks (drift, health, certificates) as
their own verbs do (each recorded in the history), turns what they found into conditions (a host
drifted, a host unhealthy, a certificate under 30 days, a check that could not run), and compares
them with the conditions the last run left firing: only what is new is sent as *firing*, only
what went away as *resolved*. A channel that cannot be reached leaves the stored state as it was,
so the next run sends the same news again; nothing is lost and nothing is sent twice.

Channels (``hx_watch_channels`` in the environment's data, credentials as ``!vault`` values):
a webhook (JSON POST: Alertmanager's ``/api/v2/alerts`` list, or a chat webhook's ``{"text": ...}``)
and e-mail over SMTP with STARTTLS.
"""

from __future__ import annotations

import json
import re
import shlex
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from hxinfra.errors import HxError
from hxinfra.secrets import redact, reveal

CHECKS = ("drift", "health", "certs")
CERT_DAYS = 30  # a certificate with fewer days left is a condition
UNIT_PREFIX = "hxinfra-watch-"
HEADER = "# managed by hxinfra (watch); local changes are overwritten"
EVERY = re.compile(r"([1-9][0-9]*)(m|h)")
# what may stand unquoted in a unit file's ExecStart and Environment (systemd has its own quoting
# and % specifiers): a path or value outside this is refused, never half-quoted
UNIT_SAFE = re.compile(r"[A-Za-z0-9_./@:+=,-]+")


class WatchError(HxError):
    """A watch that cannot be installed, run or told (bad schedule, channel, unit directory)."""


# ------------------------------------------------------------------------------ conditions
@dataclass(frozen=True)
class Condition:
    """One thing that is wrong now: ``key`` names it across runs (``drift/hx-web-01``)."""

    key: str
    kind: str  # drift | unhealthy | certificate | check-failed
    host: str
    summary: str


def _drift(data: Mapping[str, Any]) -> list[Condition]:
    found = []
    for h in data.get("hosts", []):
        if h.get("status") == "drifted":
            names = [f"{f['kind']} {f['name']}" for f in h.get("findings", [])]
            names += [f"operation {o}" for o in h.get("operations", [])]
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
            found.append(Condition(f"drift/{h['host']}", "drift", h["host"], f"drifted: {', '.join(names[:3])}{more}"))
        elif h.get("status") in ("failed", "unreachable"):
            summary = f"drift check {h['status']}: {h.get('cause', '')}".rstrip(": ")
            found.append(Condition(f"check-failed/drift/{h['host']}", "check-failed", h["host"], summary))
    return found


def _health(data: Mapping[str, Any]) -> list[Condition]:
    found = []
    for h in data.get("hosts", []):
        if not h.get("ok"):
            failures = h.get("failures") or (["unreachable"] if not h.get("reachable", True) else ["failed"])
            summary = "unhealthy: " + "; ".join(str(f) for f in failures)[:300]
            found.append(Condition(f"unhealthy/{h['host']}", "unhealthy", h["host"], summary))
    return found


def _certs(rows: Sequence[Mapping[str, Any]]) -> list[Condition]:
    found = []
    for row in rows:
        days = row.get("days_left")
        if not isinstance(days, int) or days < CERT_DAYS:
            said = "missing or unreadable" if not isinstance(days, int) else f"{days} day(s) left"
            summary = f"certificate {row.get('name')} ({row.get('path')}): {said}"
            found.append(Condition(f"certificate/{row['host']}/{row.get('path')}", "certificate", row["host"], summary))
    return found


def conditions(check: str, exit_code: int, stdout: str, stderr: str) -> list[Condition]:
    """What one check's run says is wrong, from its JSON (``check-failed`` when it said nothing
    readable: the scheduled run itself failed)."""
    try:
        data = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        data = None
    if data is None or (isinstance(data, dict) and "error" in data and "hosts" not in data):
        said = data.get("error", "") if isinstance(data, dict) else ""
        why = (said or (stderr.strip().splitlines() or [f"exit {exit_code}"])[-1])[:300]
        return [Condition(f"check-failed/{check}", "check-failed", "", f"the {check} check did not run: {why}")]
    readers: dict[str, Callable[[Any], list[Condition]]] = {"drift": _drift, "health": _health, "certs": _certs}
    return readers[check](data)


@dataclass
class News:
    """What changed since the last run: conditions that are new, and stored ones that went away."""

    firing: list[Condition] = field(default_factory=list)
    resolved: list[Condition] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.firing or self.resolved)


def check_of(key: str) -> str:
    """The check whose run says whether condition ``key`` still holds."""
    kind, _, rest = key.partition("/")
    if kind == "check-failed":
        kind = rest.split("/", 1)[0]
    return {"drift": "drift", "unhealthy": "health", "health": "health", "certificate": "certs"}.get(kind, kind)


def news(before: Mapping[str, Condition], now: Iterable[Condition], checks: Iterable[str] = CHECKS) -> News:
    """The change of state from ``before`` (what the last run left firing) to ``now``, as far as
    the ``checks`` that ran can say: a condition of a check that did not run stays as it was."""
    current = {c.key: c for c in now}
    ran = set(checks)
    return News(
        firing=[c for k, c in sorted(current.items()) if k not in before],
        resolved=[c for k, c in sorted(before.items()) if k not in current and check_of(k) in ran],
    )


# ------------------------------------------------------------------------------ channels
@dataclass(frozen=True)
class Channel:
    """Where news goes: a webhook (``url``, ``format``) or e-mail (``to`` and the SMTP server)."""

    kind: str  # webhook | email
    url: Any = ""  # may be a vault value
    format: str = "chat"  # alertmanager | chat
    to: tuple[str, ...] = ()
    sender: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: Any = ""
    starttls: bool = True
    cafile: str = ""  # the CA of the SMTP server's certificate ("" = the system's)

    def name(self) -> str:
        return f"webhook ({self.format})" if self.kind == "webhook" else f"e-mail to {', '.join(self.to)}"


ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


def channels(data: Mapping[str, Any]) -> list[Channel]:
    """``hx_watch_channels`` of an environment, checked: each entry ``{webhook: URL, format:
    alertmanager|chat}`` or ``{email: [ADDRESS...], smtp_host, smtp_port, smtp_user,
    smtp_password, from, starttls, cafile}``."""
    raw = data.get("hx_watch_channels") or []
    if not isinstance(raw, list):
        raise WatchError("hx_watch_channels: a list of channels ({webhook: URL} or {email: [ADDRESS]})")
    out = []
    for i, entry in enumerate(raw):
        where = f"hx_watch_channels[{i}]"
        if not isinstance(entry, Mapping):
            raise WatchError(f"{where}: a mapping ({{webhook: URL}} or {{email: [ADDRESS]}})")
        if "webhook" in entry:
            url = str(reveal(entry["webhook"]) or "")
            if not re.fullmatch(r"https?://[^\s]+", url):
                raise WatchError(f"{where}: webhook must be an http:// or https:// URL")
            fmt = str(entry.get("format", "chat"))
            if fmt not in ("alertmanager", "chat"):
                raise WatchError(f"{where}: format is alertmanager or chat, not {fmt!r}")
            out.append(Channel("webhook", url=entry["webhook"], format=fmt))
        elif "email" in entry:
            to = entry["email"] if isinstance(entry["email"], list) else [entry["email"]]
            if not to or not all(isinstance(a, str) and ADDRESS.fullmatch(a) for a in to):
                raise WatchError(f"{where}: email is a list of addresses")
            host = str(entry.get("smtp_host", ""))
            if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\]", host):
                raise WatchError(f"{where}: smtp_host must be a host name or address")
            port = entry.get("smtp_port", 587)
            if not isinstance(port, int) or not 0 < port < 65536:
                raise WatchError(f"{where}: smtp_port must be a port number")
            sender = str(entry.get("from", f"hxinfra@{host}"))
            if not ADDRESS.fullmatch(sender):
                raise WatchError(f"{where}: from must be an address")
            out.append(
                Channel(
                    "email",
                    to=tuple(to),
                    sender=sender,
                    smtp_host=host,
                    smtp_port=port,
                    smtp_user=str(entry.get("smtp_user", "")),
                    smtp_password=entry.get("smtp_password", ""),
                    starttls=bool(entry.get("starttls", True)),
                    cafile=str(entry.get("cafile", "")),
                )
            )
        else:
            raise WatchError(f"{where}: needs webhook: or email:")
    return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def alertmanager_alerts(env: str, found: News, now: float, url: str = "") -> list[dict[str, Any]]:
    """The news as Alertmanager's API takes alerts (POST /api/v2/alerts): a resolved one is the
    same labels with ``endsAt`` now."""
    out = []
    for state, items in (("firing", found.firing), ("resolved", found.resolved)):
        for c in items:
            alert: dict[str, Any] = {
                "labels": {
                    "alertname": f"hxinfra_{c.kind.replace('-', '_')}",
                    "env": env,
                    "host": c.host or "-",
                    "key": c.key,
                    "severity": "critical" if c.kind in ("unhealthy", "check-failed") else "warning",
                },
                "annotations": {"summary": c.summary},
                "startsAt": _iso(now),
            }
            if state == "resolved":
                alert["endsAt"] = _iso(now)
            if url:
                alert["generatorURL"] = url
            out.append(alert)
    return out


def text(env: str, found: News) -> str:
    """The news in a few lines, for a chat webhook and the e-mail's body."""
    lines = [f"hxinfra watch: {env}: {len(found.firing)} firing, {len(found.resolved)} resolved"]
    lines += [f"FIRING {c.key}: {c.summary}" for c in found.firing]
    lines += [f"RESOLVED {c.key}: {c.summary}" for c in found.resolved]
    return "\n".join(lines)


def send(channel: Channel, env: str, found: News, now: float | None = None, timeout: float = 15.0) -> None:
    """Deliver ``found`` on ``channel``; a :class:`WatchError` naming the channel when it cannot be.
    Every word is redacted: no secret of the environment leaves in an alert."""
    now = time.time() if now is None else now
    if channel.kind == "webhook":
        if channel.format == "alertmanager":
            body: Any = alertmanager_alerts(env, found, now)
        else:
            body = {"text": text(env, found)}
        request = urllib.request.Request(  # noqa: S310 - an http(s) URL, checked in channels()
            str(reveal(channel.url)),
            data=redact(json.dumps(body)).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "hxinfra-watch"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - http(s) checked
                answer.read()
        except (urllib.error.URLError, OSError) as e:
            raise WatchError(f"{channel.name()}: {redact(str(e))}") from None
        return
    message = EmailMessage()
    message["Subject"] = f"hxinfra watch {env}: {len(found.firing)} firing, {len(found.resolved)} resolved"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(redact(text(env, found)) + "\n")
    try:
        with smtplib.SMTP(channel.smtp_host.strip("[]"), channel.smtp_port, timeout=timeout) as smtp:
            if channel.starttls:
                context = ssl.create_default_context(cafile=channel.cafile or None)
                smtp.starttls(context=context)
            if channel.smtp_user:
                smtp.login(channel.smtp_user, str(reveal(channel.smtp_password) or ""))
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        raise WatchError(f"{channel.name()} via {channel.smtp_host}:{channel.smtp_port}: {redact(str(e))}") from None


def deliver(targets: Sequence[Channel], env: str, found: News, send_one: Callable[..., None] = send) -> list[str]:
    """Send ``found`` on every channel; the channels that failed, each with why (none: all got it)."""
    failed = []
    for channel in targets:
        try:
            send_one(channel, env, found)
        except WatchError as e:
            failed.append(str(e))
    return failed


# ------------------------------------------------------------------------------ schedule
def every_seconds(every: str) -> int:
    """``15m``, ``2h``: the period in seconds, 5 minutes to 24 hours."""
    m = EVERY.fullmatch(every.strip())
    if not m:
        raise WatchError(f"--every {every!r}: minutes or hours, e.g. 15m or 2h")
    seconds = int(m.group(1)) * (60 if m.group(2) == "m" else 3600)
    if not 300 <= seconds <= 86400:
        raise WatchError(f"--every {every!r}: between 5m and 24h")
    return seconds


def unit_name(env: str) -> str:
    return f"{UNIT_PREFIX}{env}"


def _unit_value(value: str, what: str) -> str:
    if not UNIT_SAFE.fullmatch(value):
        raise WatchError(f"{what} {value!r} cannot stand in a systemd unit (spaces, quotes or % in it)")
    return value


def units(
    env: str,
    every: str,
    checks: Sequence[str],
    python: str,
    root: Path,
    state: Path,
    password_file: str = "",
    limit: str = "",
) -> dict[str, str]:
    """The service and the timer of one environment's watch (file name -> text)."""
    seconds = every_seconds(every)
    bad = [c for c in checks if c not in CHECKS]
    if bad or not checks:
        raise WatchError(f"--checks: some of {', '.join(CHECKS)}, not {', '.join(bad) or 'none'}")
    command = [
        _unit_value(python, "the Python of hxinfra"),
        "-m",
        "hxinfra",
        "watch",
        "run",
        "--env",
        env,
        "--checks",
        ",".join(checks),
        *(["--limit", _unit_value(limit, "the host pattern")] if limit else []),
    ]
    # the verbs the watch runs read the vault password file from the environment, as the watch does
    secret = (
        f"Environment=HXINFRA_VAULT_PASSWORD_FILE={_unit_value(password_file, 'the vault password file')}\n"
        if password_file
        else ""
    )
    about = f"# hxinfra watch: env={env} every={every} checks={','.join(checks)}"
    service = (
        f"{HEADER}\n{about}\n[Unit]\nDescription=hxinfra watch of {env}: {', '.join(checks)}\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f"WorkingDirectory={_unit_value(str(root), 'the project directory')}\n"
        f"Environment=HXINFRA_PROJECT={root}\n"
        f"Environment=HXINFRA_STATE={_unit_value(str(state), 'the state directory')}\n{secret}"
        f"ExecStart={' '.join(command)}\nNice=10\nTimeoutStartSec={max(seconds - 60, 240)}\n"
    )
    timer = (
        f"{HEADER}\n{about}\n[Unit]\nDescription=Run the hxinfra watch of {env} every {every}\n\n"
        f"[Timer]\nOnBootSec=2min\nOnUnitActiveSec={seconds}s\nRandomizedDelaySec=30s\n"
        f"Unit={unit_name(env)}.service\n\n[Install]\nWantedBy=timers.target\n"
    )
    return {f"{unit_name(env)}.service": service, f"{unit_name(env)}.timer": timer}


def installed(unit_dir: Path) -> list[dict[str, str]]:
    """The watches whose units are in ``unit_dir``: env, every, checks (from their own header)."""
    out = []
    for timer in sorted(unit_dir.glob(f"{UNIT_PREFIX}*.timer")):
        lines = timer.read_text(errors="replace").splitlines()
        if len(lines) < 2 or lines[0] != HEADER or not lines[1].startswith("# hxinfra watch: "):
            continue  # not ours
        fields = dict(part.split("=", 1) for part in lines[1][len("# hxinfra watch: ") :].split() if "=" in part)
        out.append({"env": fields.get("env", ""), "every": fields.get("every", ""), "checks": fields.get("checks", "")})
    return out


def check_argv(check: str, env: str, limit: str = "") -> list[str]:
    """The verb a check runs (``hxinfra`` arguments), with JSON on stdout; ``limit``: an Ansible
    host pattern ("" = every host)."""
    hosts = ["--limit", limit] if limit else []
    return {
        "drift": ["drift", "--env", env, *hosts, "--json"],
        "health": ["health", "--env", env, *hosts, "--json"],
        "certs": ["pki", "expiry", "--env", env, *hosts, "--json", "--days", str(CERT_DAYS)],
    }[check]


def describe(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
