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

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyinfra import host, logger, state
from pyinfra.api import FactBase, deploy
from pyinfra.operations import apt, files, server, systemd
from typing_extensions import override

from deploys import templates_root
from hxinfra.components import Component
from hxinfra.deploytools import component_data, is_deploy_file, step
from hxinfra.operations import Absent, ConfigItem, ManagedFile, config_set
from hxinfra.paths import find_project_root
from hxinfra.pki import CaInfo, PkiError, verify_ca, verify_key_pair
from hxinfra.render import render
from hxinfra.validate import DataError, abs_path, choice, collect, fields, one_line
from hxinfra.validate import name as validate_name
from hxinfra.vault import Placeholder, Secret, Vaulted

DEFAULTS: dict[str, Any] = {
    # CA certificates every host trusts, root and intermediates, one entry each:
    #   {name: hx-root-ca, pem: "-----BEGIN...", sha256: "AB:CD:..."}   inline (may be a !vault value)
    #   {name: hx-root-ca, file: inventories/production/files/hx-root-ca.crt}  relative to the project
    #   {name: hx-root-ca, from_ca_host: true}   read by the controller from ca_trust_ca_host_path
    # `sha256` pins the fingerprint (any case, colons optional, "SHA256:" prefix allowed).
    # Removing an entry removes that CA from the hosts.
    "ca_trust_certificates": [],
    # The CA host for `from_ca_host` entries ("" = the first host of the ca_servers group) and the
    # certificate's path on it (the Easy-RSA PKI of the old platform).
    "ca_trust_ca_host": "",
    "ca_trust_ca_host_path": "/home/agent0/easy-rsa/pki/ca.crt",
    # Debian's directory for local trust anchors; each CA is <dir>/<name>.crt, 0644 root.
    "ca_trust_dir": "/usr/local/share/ca-certificates",
    # Warn (on the controller, and from the monitor on the host) this many days before a CA expires.
    "ca_trust_warn_days": 30,
    # Install the expiry monitor: a script run daily by a systemd timer (not cron).
    "ca_trust_monitor": True,
    # Audit log (one line per change of the trusted set) and the monitor's log.
    "ca_trust_log_dir": "/var/log/hx/ca-trust",
    # Service certificates issued by the CA, one entry per service certificate:
    #   {name: webui, cert: <PEM or file>, key: <PEM, file or !vault>, key_group: root, key_mode: "0600"}
    # Written as <ca_trust_host_cert_dir>/<name>.crt (0644) and <dir>/private/<name>.key; give
    # key_group ssl-cert and key_mode "0640" for a service that reads its key as itself (PostgreSQL).
    "ca_trust_host_certs": [],
    "ca_trust_host_cert_dir": "/etc/ssl/hx",
}

HEADER = "# managed by hxinfra (ca_trust); local changes are overwritten"
MONITOR_SCRIPT = "/usr/local/sbin/hx-ca-trust-expiry"
MONITOR_UNIT = "/etc/systemd/system/hx-ca-trust-expiry"
CERT_ENTRY_KEYS = {"name", "pem", "file", "sha256", "from_ca_host"}


def _project_file(path: str) -> Path:
    p = Path(path)
    if not p.is_absolute():
        p = (find_project_root() or Path.cwd()) / p
    return p


def _read(value: Any, what: str) -> str | None:
    """PEM text from an inline value or a file path (a key read from a file becomes a Secret).

    A vault value is never read as a path: it must hold the PEM itself. ``None`` for a value that
    is still encrypted (inventory checks never decrypt) or a plan placeholder: the entry is then
    verified when a deploy decrypts it.
    """
    if isinstance(value, Vaulted | Placeholder):
        return None
    if not isinstance(value, str) or not value.strip():
        raise PkiError(f"{what}: empty")
    if "-----BEGIN" in value:
        return value
    if isinstance(value, Secret):
        raise PkiError(f"{what}: a vault value must hold the PEM text itself (it is never read as a file path)")
    path = _project_file(one_line(value, what))
    try:
        text = path.read_text()
    except OSError as e:
        raise PkiError(f"{what}: cannot read {path}: {e.strerror}") from e
    return Secret(text) if "PRIVATE KEY" in text else text


def _check_name(name: Any, what: str) -> str:
    try:
        return validate_name(name, f"{what}: name")
    except DataError as e:
        raise PkiError(str(e)) from None


def resolve_cas(data: Mapping[str, Any], fetch: Any = None) -> list[tuple[str, str, CaInfo]]:
    """Every CA of the data as ``(name, pem, checked info)``; any problem raises PkiError.

    ``fetch(entry_name)`` returns the PEM of a ``from_ca_host`` entry (the deploy reads it from
    the CA host); without it such entries are skipped (inventory validation cannot connect).
    """
    out: list[tuple[str, str, CaInfo]] = []
    entries = data["ca_trust_certificates"]
    names = set()
    for i, entry in enumerate(entries):
        what = f"ca_trust_certificates[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - CERT_ENTRY_KEYS or "name" not in entry:
            raise PkiError(f"{what}: must be a dict with name and one of pem/file/from_ca_host (and sha256)")
        name = _check_name(entry["name"], what)
        if name in names:
            raise PkiError(f"{what}: name {name} listed twice")
        names.add(name)
        sources = [k for k in ("pem", "file", "from_ca_host") if entry.get(k)]
        if len(sources) != 1:
            raise PkiError(f"{what} ({name}): give exactly one of pem, file, from_ca_host")
        if sources[0] == "from_ca_host":
            if fetch is None:
                continue
            pem = fetch(name)
        else:
            read = _read(entry[sources[0]], f"{what} ({name})")
            if read is None:
                continue
            pem = read
        info = verify_ca(pem, f"CA {name}", pin=entry.get("sha256"), warn_days=data["ca_trust_warn_days"])
        out.append((name, pem.strip() + "\n", info))
    return out


KEY_MODES = ("0600", "0640")


def resolve_host_certs(data: Mapping[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """Every service certificate as ``(entry, cert PEM, key PEM)``, the pair checked to match.

    An entry whose cert or key is still encrypted (inventory checks) or a plan placeholder keeps
    its key as that placeholder: the plan writes key files as sensitive, never their content.
    """
    out: list[tuple[dict[str, Any], str, str]] = []
    for i, raw in enumerate(data["ca_trust_host_certs"]):
        what = f"ca_trust_host_certs[{i}]"
        entry = dict(fields(raw, what, ("name", "cert", "key"), ("key_group", "key_mode")))
        _check_name(entry["name"], what)
        entry.setdefault("key_group", "root")
        validate_name(entry["key_group"], f"{what}: key_group")
        entry.setdefault("key_mode", "0600" if entry["key_group"] == "root" else "0640")
        choice(entry["key_mode"], f"{what}: key_mode (a private key is never world-readable)", KEY_MODES)
        cert, key = _read(entry["cert"], f"{what} cert"), _read(entry["key"], f"{what} key")
        if cert is None or key is None:
            if isinstance(entry["cert"], Placeholder | str) and cert is not None:
                out.append((entry, cert, str(entry["key"])))
            continue
        key = key if isinstance(key, Secret) else Secret(key)
        verify_key_pair(cert, key, f"{what} ({entry['name']})")
        out.append((entry, cert, key))
    return out


def check_data(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Inventory-time check (before anything connects): paths and names are safe, every CA and host
    certificate verifies (vault values are verified when a deploy decrypts them)."""
    return collect(data, {
        "ca_trust_certificates": resolve_cas,
        "ca_trust_host_certs": resolve_host_certs,
        "ca_trust_dir": lambda d: abs_path(d["ca_trust_dir"], "ca_trust_dir"),
        "ca_trust_log_dir": lambda d: abs_path(d["ca_trust_log_dir"], "ca_trust_log_dir"),
        "ca_trust_host_cert_dir": lambda d: abs_path(d["ca_trust_host_cert_dir"], "ca_trust_host_cert_dir"),
        "ca_trust_ca_host_path": lambda d: abs_path(d["ca_trust_ca_host_path"], "ca_trust_ca_host_path"),
        "ca_trust_ca_host": lambda d: d["ca_trust_ca_host"] and validate_name(d["ca_trust_ca_host"], "ca_trust_ca_host"),
        "ca_trust_warn_days": lambda d: d["ca_trust_warn_days"] >= 0 or _fail("ca_trust_warn_days: must be >= 0"),
    })  # fmt: skip


def _fail(message: str) -> bool:
    raise DataError(message)


def plan(data: Mapping[str, Any], host_name: str) -> list[ConfigItem]:
    """The offline plan: trust anchors, monitor and service certificates (``from_ca_host`` CAs
    need SSH and are left out; removals of stale anchors need the host's facts)."""
    data = dict(data)  # vault values are placeholders here: the plan never decrypts
    return ca_files(data, resolve_cas(data), []) + monitor_files(data) + host_cert_files(data, resolve_host_certs(data))


COMPONENT = Component(
    "ca_trust", DEFAULTS, check=check_data, tags=("packages", "config", "security", "monitor", "certs"), plan=plan,
    multiline=("ca_trust_certificates", "ca_trust_host_certs"),
)  # fmt: skip


def ca_files(data: Mapping[str, Any], cas: list[tuple[str, str, CaInfo]], managed_now: list[str]) -> list[ConfigItem]:
    """The trust-anchor files: one per CA, and the removal of managed ones no longer in data."""
    d = data["ca_trust_dir"]
    items: list[ConfigItem] = [
        ManagedFile(f"{d}/{name}.crt", f"{HEADER}\n# {info.subject} sha256 {info.sha256}\n{pem}")
        for name, pem, info in cas
    ]
    wanted = {i.path for i in items}
    items += [Absent(p) for p in sorted(managed_now) if p not in wanted]
    return items


def monitor_files(data: Mapping[str, Any]) -> list[ConfigItem]:
    context = {**data, "monitor_script": MONITOR_SCRIPT, "header": HEADER}
    files_ = {
        MONITOR_SCRIPT: ("ca_trust/usr/local/sbin/hx-ca-trust-expiry.j2", "0755"),
        f"{MONITOR_UNIT}.service": ("ca_trust/etc/systemd/system/hx-ca-trust-expiry.service.j2", "0644"),
        f"{MONITOR_UNIT}.timer": ("ca_trust/etc/systemd/system/hx-ca-trust-expiry.timer.j2", "0644"),
    }
    if not data["ca_trust_monitor"]:
        return [Absent(path) for path in files_]
    return [
        ManagedFile(path, render(templates_root(), tpl, context), mode=mode) for path, (tpl, mode) in files_.items()
    ]


def host_cert_files(data: Mapping[str, Any], certs: list[tuple[dict[str, Any], str, str]]) -> list[ConfigItem]:
    d = data["ca_trust_host_cert_dir"]
    items: list[ConfigItem] = []
    for entry, cert, key in certs:
        group, mode = entry["key_group"], entry["key_mode"]
        items.append(ManagedFile(f"{d}/{entry['name']}.crt", cert))
        items.append(ManagedFile(f"{d}/private/{entry['name']}.key", key, mode=mode, group=group, sensitive=True))
    return items


class ManagedCaFiles(FactBase[list[str]]):
    """CA files in a directory that carry the hxinfra header (so removals never touch others)."""

    default = list

    @override
    def command(self, directory: str) -> str:
        q = shlex.quote(directory)
        return f"grep -l -x -F {shlex.quote(HEADER)} {q}/*.crt 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line.strip()]


_fetched: dict[tuple[str, str], str] = {}


def fetch_from_ca_host(data: Mapping[str, Any]) -> Any:
    """A fetcher for ``from_ca_host`` entries: SFTP from the CA host, by the controller, once per run."""
    import paramiko

    name = data["ca_trust_ca_host"] or next(iter(state.inventory.get_group("ca_servers", [])), None)
    if name is None:
        raise PkiError("from_ca_host: no ca_trust_ca_host and no host in group ca_servers")
    ca_host = state.inventory.get_host(str(name))
    path = data["ca_trust_ca_host_path"]

    def fetch(entry: str) -> str:
        key = (str(ca_host), path)
        if key not in _fetched:
            d = ca_host.data
            client = paramiko.SSHClient()
            # the same trust as pyinfra's connection to that host: its known_hosts file, strict
            known_hosts = d.get("ssh_known_hosts_file")
            if known_hosts:
                client.load_host_keys(os.path.expanduser(str(known_hosts)))
            else:
                client.load_system_host_keys()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(d.get("ssh_hostname") or ca_host.name, port=int(d.get("ssh_port") or 22),
                               username=d.get("ssh_user"), key_filename=d.get("ssh_key"), timeout=15)  # fmt: skip
                with client.open_sftp() as sftp, sftp.open(path) as f:
                    _fetched[key] = f.read().decode()
            except (OSError, paramiko.SSHException) as e:
                raise PkiError(f"CA {entry}: cannot fetch {path} from CA host {ca_host}: {e}") from e
            finally:
                client.close()
        return _fetched[key]

    return fetch


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
    cert_dir, log_dir = data["ca_trust_host_cert_dir"], data["ca_trust_log_dir"]

    if step(COMPONENT, host.data, "packages"):
        apt.packages(
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
        anchors = [shlex.quote(f"{data['ca_trust_dir']}/{n}.crt") for n, _p, _i in cas]
        checks = (
            " && ".join(
                f'test "$(readlink -f /etc/ssl/certs/$(openssl x509 -noout -subject_hash -in {a}).0)" = {a}'
                for a in anchors
            )
            or "true"
        )
        audit = ", ".join(f"{n}={i.sha256[:16]}" for n, _p, i in cas) or "none"
        server.shell(
            name="Run update-ca-certificates, check /etc/ssl/certs/<hash>.0 of each CA, log the change",
            commands=[
                "update-ca-certificates --fresh >/dev/null",
                checks,
                f'install -d -m 0750 {shlex.quote(log_dir)} && echo "$(date -Is) trusted set now: {audit}"'
                f" >> {shlex.quote(log_dir)}/changes.log",
            ],
            _if=trust.did_change,
        )
    if step(COMPONENT, host.data, "monitor"):
        monitor = config_set(
            name=f"Write the CA expiry monitor {MONITOR_SCRIPT} and its timer", items=monitor_files(data)
        )
        systemd.daemon_reload(name="Reload systemd units after a monitor change", _if=monitor.did_change)
        systemd.service(
            name="Start and enable hx-ca-trust-expiry.timer",
            service="hx-ca-trust-expiry.timer",
            running=True,
            enabled=True,
            _if=lambda: bool(data["ca_trust_monitor"]),
        )
    if step(COMPONENT, host.data, "certs", "security"):
        files.directory(
            name="Create the service certificate directory's private/ (0710 root:ssl-cert)",
            path=f"{cert_dir}/private",
            user="root",
            group="ssl-cert",
            mode="0710",
        )
        host_cert_items = host_cert_files(data, certs)
        config_set(
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


if is_deploy_file(globals()):
    ca_trust()
