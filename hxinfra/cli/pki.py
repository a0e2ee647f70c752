"""``hxinfra pki``: a small CA for the lab and testing environments, and CA checks for operators."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hxinfra import guard
from hxinfra.cli.common import ENV_OPTION, YES_OPTION, _load, echo_json
from hxinfra.pki import LocalCA, colon_fingerprint, load_certificate, verify_ca

DIR_OPTION = click.option(
    "--dir",
    "directory",
    envvar="HXINFRA_PKI_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="The CA directory (default: the current lab's CA).",
)


def _ca(directory: str | None) -> LocalCA:
    if directory:
        return LocalCA(directory)
    from hxinfra.lab.core import Lab
    from hxinfra.lab.inventory import lab_name

    return LocalCA(Lab(lab_name()).dir / "pki")


@click.group()
def pki() -> None:
    """A local CA for lab/testing TLS (cryptography library), and CA certificate checks.

    \b
    Production certificates come from the HX CA; give them to the ca_trust deploy as data.
    """


@pki.command()
@DIR_OPTION
@click.option("--cn", default="HX Lab Root CA", show_default=True, help="The CA's common name.")
@click.option("--days", default=3650, show_default=True, type=click.IntRange(1))
@click.option("--force", is_flag=True, help="Replace an existing CA (every issued certificate becomes untrusted).")
def init(directory: str | None, cn: str, days: int, force: bool) -> None:
    """Create a CA: ca.crt and private/ca.key (0600)."""
    ca = _ca(directory)
    cert = ca.init(cn, days=days, force=force)
    click.echo(f"{ca.cert_path}  sha256 {colon_fingerprint(cert)}")


@pki.command()
@click.argument("name")
@DIR_OPTION
@click.option("--dns", "dns_names", multiple=True, required=True, help="A DNS name (first is the CN); repeatable.")
@click.option("--ip", "ips", multiple=True, help="An IP address SAN; repeatable.")
@click.option("--days", default=397, show_default=True, type=click.IntRange(1))
def issue(name: str, directory: str | None, dns_names: tuple[str, ...], ips: tuple[str, ...], days: int) -> None:
    """Issue a server certificate NAME (issued/NAME.crt, issued/NAME.key 0600)."""
    crt, key = _ca(directory).issue(name, list(dns_names), list(ips), days=days)
    click.echo(f"{crt}\n{key}")


@pki.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--pin", help="Expected SHA-256 fingerprint (any case, colons optional).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
def verify_cmd(file: str, pin: str | None, as_json: bool) -> None:
    """Check a CA certificate as the ca_trust deploy will: a CA, pinned, not expired."""
    info = verify_ca(Path(file).read_bytes(), file, pin=pin)
    cert = load_certificate(Path(file).read_bytes(), file)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "subject": info.subject,
                    "sha256": info.sha256,
                    "not_after": info.not_after.isoformat(),
                    "days_left": info.days_left,
                    "warning": info.warning,
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"{file}: OK  {info.subject}\n  sha256 {colon_fingerprint(cert)}\n  valid until "
        f"{info.not_after:%Y-%m-%d} ({info.days_left} days)"
    )
    if info.warning:
        click.echo(f"warning: {info.warning}", err=True)


# the service certificates of each host, read on the host itself: "<name> <notAfter as epoch>" lines
_EXPIRY = (
    'for f in {files}; do [ -e "$f" ] && echo "$f $(date -d "$(openssl x509 -enddate -noout -in "$f" | '
    'cut -d= -f2)" +%s)"; done; true'
)


def expiry_table(env_name: str, pattern: str) -> list[dict[str, object]]:
    """Every service certificate the selected hosts' components declare (``Component.certificates``),
    as served from the host."""
    import shlex
    import time

    from hxinfra.adhoc import Session
    from hxinfra.cli.common import _load
    from hxinfra.components import declared
    from hxinfra.health import INTEGER
    from hxinfra.inventory import select_hosts

    env = _load(env_name)
    hosts = select_hosts(env, [pattern])
    entries: dict[str, dict[str, dict[str, object]]] = {}
    for h in hosts:
        data = env.host_data(h, with_defaults=True)
        for comp, certs in declared("certificates", data, h, env.host_groups(env.host(h)), env.components):
            for cert in certs:
                source = Path(cert.source) if cert.source else None
                entries.setdefault(h, {})[cert.path] = {"name": cert.name, "source": source, "deploy": comp.name}
    rows: list[dict[str, object]] = []
    with Session(env, hosts) as session:
        commands = {
            h: _EXPIRY.format(files=" ".join(shlex.quote(f) for f in entries.get(h, {})) or "''") for h in hosts
        }
        for r in session.run_each(commands, become=None):
            seen = {
                w[0]: w[1] for line in r.stdout if len(w := line.split()) == 2 and INTEGER.fullmatch(w[1])
            }  # a line that is not "<path> <epoch>" is no certificate read
            for path, info in entries.get(r.host, {}).items():
                end = int(seen[path]) if path in seen else None
                rows.append(
                    {
                        "host": r.host,
                        "name": info["name"],
                        "path": path,
                        "reachable": r.reachable,
                        "not_after": time.strftime("%Y-%m-%d", time.gmtime(end)) if end else None,
                        "days_left": (end - int(time.time())) // 86400 if end else None,
                        "source": str(info["source"]) if info["source"] else "vault or inline PEM",
                        "deploy": info["deploy"],
                    }
                )
    return rows


def _due(row: dict[str, object], threshold: int) -> bool:
    """Missing, unreadable, or fewer than ``threshold`` days left."""
    days = row["days_left"]
    return not isinstance(days, int) or days < threshold


def _print_rows(rows: list[dict[str, object]], threshold: int) -> None:
    click.echo(f"{'host':<14} {'certificate':<12} {'not after':<11} {'days':>5}  source")
    for r in rows:
        days = r["days_left"]
        flag = "  <-- renew" if _due(r, threshold) else ""
        click.echo(
            f"{r['host']!s:<14} {r['name']!s:<12} {r['not_after'] or 'missing'!s:<11} "
            f"{days if days is not None else '-'!s:>5}  {r['source']}{flag}"
        )


@pki.command("expiry")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@click.option(
    "--days",
    "threshold",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="A certificate with fewer days left is flagged, and exit 1.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def expiry_cmd(env_name: str, pattern: str, threshold: int, as_json: bool) -> None:
    """The service certificates of every host as the host has them: days left, where they come from."""
    rows = expiry_table(env_name, pattern)
    if as_json:
        echo_json(json.dumps(rows, indent=2))
    else:
        _print_rows(rows, threshold)
    if any(_due(r, threshold) for r in rows):
        raise SystemExit(1)


@pki.command("renew")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
@click.option(
    "--days",
    "threshold",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="Renew the certificates with fewer days left than this.",
)
@click.option("--valid-days", default=397, show_default=True, type=click.IntRange(1), help="Validity of a renewal.")
@click.option("--check", is_flag=True, help="Only say what would be renewed.")
@YES_OPTION
def renew_cmd(env_name: str, pattern: str, threshold: int, valid_days: int, check: bool, yes: bool) -> None:
    """Renew the service certificates under --days: issued again by their CA (the same names, a new
    key), deployed by the component that declares them, their services reloaded; then the table again.

    A certificate kept in the vault (production: issued by the HX CA) is listed to renew by hand:
    issue it from the HX CA and put it in the vault (hxinfra vault edit), then deploy its component."""
    from hxinfra.options import RunOptions
    from hxinfra.paths import project_root
    from hxinfra.pki import issuing_ca, renew
    from hxinfra.runner import patch_for_gevent, run_deploy

    patch_for_gevent()  # before expiry_table connects: this command deploys afterwards
    confirmed = None
    if not check:  # before anything is issued or connects: renewing deploys to the hosts
        env = _load(env_name)
        action = "renew and deploy certificates"
        confirmed = guard.settle(env, yes, action)
    rows = expiry_table(env_name, pattern)
    due = [r for r in rows if _due(r, threshold)]
    _print_rows(rows, threshold)
    by_hand: list[str] = []
    hosts: dict[str, set[str]] = {}  # the component that deploys the certificate -> its hosts
    for r in due:
        source = Path(str(r["source"]))
        ca = issuing_ca(source) if source.is_absolute() else None
        if ca is None:
            by_hand.append(f"{r['host']}: {r['name']} (deployed by {r['deploy']})")
            continue
        if not check:
            cert = renew(ca, source.stem, valid_days)
            click.echo(
                f"renewed {source.stem} ({r['host']}: {r['name']}), valid until {cert.not_valid_after_utc:%Y-%m-%d}",
                err=True,
            )
        hosts.setdefault(str(r["deploy"]), set()).add(str(r["host"]))
    if hosts and not check:
        for name, on in sorted(hosts.items()):
            report = run_deploy(project_root(), env_name, name, RunOptions(limit=tuple(sorted(on))), confirm=confirmed)
            if any(h.status in ("failed", "unreachable") for h in report.hosts.values()):
                click.echo(f"hxinfra: the {name} deploy of the renewed certificates failed", err=True)
                raise SystemExit(1)
        _print_rows(expiry_table(env_name, pattern), threshold)
    if by_hand:
        click.echo(
            "renew by hand (issue from the HX CA, hxinfra vault edit, then deploy the component named): "
            + ", ".join(by_hand),
            err=True,
        )
        raise SystemExit(1)
