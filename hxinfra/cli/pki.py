"""``hxinfra pki``: a small CA for the lab and testing environments, and CA checks for operators."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hxinfra.pki import LocalCA, colon_fingerprint, load_certificate, verify_ca

DIR_OPTION = click.option(
    "--dir", "directory", envvar="HXINFRA_PKI_DIR", show_envvar=True, type=click.Path(file_okay=False),
    help="The CA directory (default: the current lab's CA).",
)  # fmt: skip


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
        click.echo(json.dumps({"subject": info.subject, "sha256": info.sha256, "not_after": info.not_after.isoformat(),
                               "days_left": info.days_left, "warning": info.warning}, indent=2))  # fmt: skip
        return
    click.echo(f"{file}: OK  {info.subject}\n  sha256 {colon_fingerprint(cert)}\n  valid until "
               f"{info.not_after:%Y-%m-%d} ({info.days_left} days)")  # fmt: skip
    if info.warning:
        click.echo(f"warning: {info.warning}", err=True)
