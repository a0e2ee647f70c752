"""CA trust: every HX host trusts the HX internal root CA (and intermediates), and services get
CA-issued certificates.

The old role could not finish a run; this one keeps its intent: CA certificates come from data
(inline, a file, a vaulted value) or are fetched by the controller from the CA host, and are
verified on the controller (a CA, pinned fingerprint, not expired) before any host is touched.
They become ``/usr/local/share/ca-certificates/<name>.crt``; ``update-ca-certificates`` runs only
when that set changed, and the result is checked (``/etc/ssl/certs/<subject hash>.0`` resolves
to each CA). A CA removed from data is removed from the hosts. An optional systemd timer warns
before a CA expires, and every change leaves an audit line in ``/var/log/hx/ca-trust/``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from deploys.ca_trust.config import (
    DEFAULTS,
    MONITOR_SCRIPT,
    backup,
    ca_files,
    certificates,
    check_data,
    health,
    host_cert_files,
    load_files,
    monitor_files,
    plan,
    readiness,
    reload_units,
    resolve_cas,
    resolve_host_certs,
    trust_update_commands,
)
from deploys.ca_trust.facts import ManagedCaFiles, fetch_from_ca_host
from hxinfra.components import Component
from hxinfra.deploytools import component_data, step
from hxinfra.ops import system
from hxinfra.ops.configset import config_set

COMPONENT = Component(
    "ca_trust",
    DEFAULTS,
    check=check_data,
    load=load_files,
    backup=backup,
    certificates=certificates,
    readiness=readiness,
    tags=("packages", "config", "security", "monitor", "certs"),
    plan=plan,
    health=health,
    multiline=("ca_trust_certificates", "ca_trust_host_certs"),
    ansible={
        "hx_ca_host": "ca_trust_ca_host",
        "hx_ca_root_ca_path_on_ca": "ca_trust_ca_host_path",
        "hx_ca_cert_dir": "ca_trust_dir",
    },
)


@deploy("CA trust", data_defaults=DEFAULTS)
def ca_trust() -> None:
    """Trust the HX CAs (and only those hxinfra put there) and place the host's service certificates."""
    data = component_data(COMPONENT, host.data)
    uses_fetch = any(isinstance(e, Mapping) and e.get("from_ca_host") for e in data["ca_trust_certificates"])
    cas = resolve_cas(data, fetch_from_ca_host(data) if uses_fetch else None)
    for _name, _pem, info in cas:
        if info.warning:
            logger.warning(f"{host.print_prefix}{info.warning}")
    certs = resolve_host_certs(data)
    cert_dir = data["ca_trust_host_cert_dir"]

    if step(COMPONENT, host.data, "packages"):
        system.packages(
            name="Install ca-certificates, openssl and ssl-cert",
            packages=["ca-certificates", "openssl", "ssl-cert"],
            update=True,
            cache_time=24 * 3600,
        )
    if step(COMPONENT, host.data, "config", "security"):
        trust = config_set(
            name="Install the CA certificates of ca_trust_certificates, remove stale ones",
            items=ca_files(data, cas, host.get_fact(ManagedCaFiles, directory=data["ca_trust_dir"])),
        )
        server.shell(
            name="Run update-ca-certificates, check /etc/ssl/certs/<hash>.0 of each CA, log the change",
            commands=trust_update_commands(data, cas),
            _if=trust.did_change,
        )
    if step(COMPONENT, host.data, "monitor"):
        monitor = config_set(
            name=f"Write the CA expiry monitor {MONITOR_SCRIPT}, its timer and the change log's rotation",
            items=monitor_files(data),
        )
        systemd.daemon_reload(name="Reload systemd units after a monitor change", _if=monitor.did_change)
        system.service(
            name="Start and enable hx-ca-trust-expiry.timer",
            service="hx-ca-trust-expiry.timer",
            running=True,
            enabled=True,
            _if=lambda: bool(data["ca_trust_monitor"]),
        )
    if step(COMPONENT, host.data, "certs", "security"):
        system.directory(
            name="Create the service certificate directory's private/ (0710 root:ssl-cert)",
            path=f"{cert_dir}/private",
            user="root",
            group="ssl-cert",
            mode="0710",
        )
        host_cert_items = host_cert_files(data, certs)
        installed = config_set(
            name="Install the service certificates and keys of ca_trust_host_certs",
            items=host_cert_items,
            validate=" && ".join(
                f"openssl x509 -noout -in {shlex.quote(item.path)}"
                if item.path.endswith(".crt")
                else f"openssl pkey -noout -in {shlex.quote(item.path)}"
                for item in host_cert_items
            )
            or None,
        )
        units = reload_units(data)
        server.shell(
            name="Reload the services of a changed service certificate (a renewal)",
            commands=[
                " ; ".join(
                    f"if systemctl is-active --quiet {shlex.quote(u)}; then systemctl reload-or-restart "
                    f"{shlex.quote(u)} || exit 1; fi"
                    for u in units
                )
                or "true"
            ],  # not running yet: nothing
            _if=[installed.did_change, lambda: bool(units)],
        )
