"""CA trust, desired state: the defaults, and the trust anchors, expiry monitor and service
certificates computed from host data alone (no facts), shared by the deploy, the offline plan and
the unit tests. CA entries given as files are read on the controller, never on the hosts.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from deploys.common import templates_root
from hxinfra.components import Backup, Certificate, Finding
from hxinfra.desired import Absent, ConfigItem, Fetched, ManagedFile, PlanItem
from hxinfra.memo import by_reads
from hxinfra.paths import FileText
from hxinfra.pki import CaInfo, PkiError, load_certificate, verify_ca, verify_key_pair
from hxinfra.render import managed_header, render, template_context
from hxinfra.secrets import Placeholder, Secret, Vaulted
from hxinfra.validate import (
    CONTROL,
    DataError,
    abs_path,
    choice,
    collect,
    fields,
    one_line,
)
from hxinfra.validate import name as validate_name

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
    #   {name: webui, cert: <PEM or file>, key: <PEM, file or !vault>, key_group: root, key_mode: "0600",
    #    reload: [nginx.service]}  (the services reloaded when the certificate or key changes: a renewal)
    # Written as <ca_trust_host_cert_dir>/<name>.crt (0644) and <dir>/private/<name>.key; give
    # key_group ssl-cert and key_mode "0640" for a service that reads its key as itself (PostgreSQL).
    "ca_trust_host_certs": [],
    "ca_trust_host_cert_dir": "/etc/ssl/hx",
}


HEADER = managed_header("ca_trust").rstrip("\n")  # also how the anchors hxinfra wrote are recognised


MONITOR_SCRIPT = "/usr/local/sbin/hx-ca-trust-expiry"


MONITOR_UNIT = "/etc/systemd/system/hx-ca-trust-expiry"


LOGROTATE = "/etc/logrotate.d/hx-ca-trust"


CERT_ENTRY_KEYS = {"name", "pem", "file", "sha256", "from_ca_host"}


def _is_path(value: Any) -> bool:
    """A plain string that names a file (PEM text, vault values and placeholders are not read)."""
    return (
        isinstance(value, str)
        and not isinstance(value, Secret)
        and bool(value.strip())
        and "-----BEGIN" not in value
        and not CONTROL.search(value)
    )


def _file_text(read: Callable[[str], str], path: str, what: str) -> str:
    try:
        text = read(path)
    except OSError as e:  # named by its key, as every data error is
        raise PkiError(f"{what}: {e.strerror}") from None
    return Secret(text) if "PRIVATE KEY" in text else text  # a key read from a file is a secret


def load_files(data: Mapping[str, Any], read: Callable[[str], str]) -> dict[str, Any]:
    """CA entries (``file``) and service certificates (``cert``, ``key``) given as paths: read on the
    controller when the inventory loads, so that checks and plans read data, never files."""
    out: dict[str, Any] = {}
    cas = data.get("ca_trust_certificates")
    if isinstance(cas, list) and any(isinstance(e, Mapping) and _is_path(e.get("file")) for e in cas):
        out["ca_trust_certificates"] = [
            {**e, "file": _file_text(read, e["file"], f"ca_trust_certificates[{i}].file")}
            if isinstance(e, Mapping) and _is_path(e.get("file"))
            else e
            for i, e in enumerate(cas)
        ]
    certs = data.get("ca_trust_host_certs")
    fields_ = ("cert", "key")
    if isinstance(certs, list) and any(
        isinstance(e, Mapping) and any(_is_path(e.get(f)) for f in fields_) for e in certs
    ):
        out["ca_trust_host_certs"] = [
            {**e, **{f: _file_text(read, e[f], f"ca_trust_host_certs[{i}].{f}") for f in fields_ if _is_path(e.get(f))}}
            if isinstance(e, Mapping)
            else e
            for i, e in enumerate(certs)
        ]
    return out


def _read(value: Any, what: str) -> str | None:
    """PEM text from an inline value or a file the inventory read (:func:`load_files`).

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
    one_line(value, what)
    raise PkiError(f"{what}: no PEM text (a file's path is read when the inventory loads)")


def _now(data: Mapping[str, Any]) -> dt.datetime | None:
    """The run's "now" from the data (the inventory sets it); a check never reads the clock."""
    text = data.get("hx_now")
    return dt.datetime.fromisoformat(text) if isinstance(text, str) and text else None


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
        info = verify_ca(
            pem, f"CA {name}", pin=entry.get("sha256"), now=_now(data), warn_days=data["ca_trust_warn_days"]
        )
        out.append((name, pem.strip() + "\n", info))
    return out


KEY_MODES = ("0600", "0640")
UNIT = re.compile(r"[A-Za-z0-9@_.:-]+\.service")


def _unit(value: Any, what: str) -> str:
    text = one_line(value, what)
    if not UNIT.fullmatch(text):
        raise PkiError(f"{what}: {text!r} is not a service unit (x.service)")
    return text


def reload_units(data: Mapping[str, Any]) -> list[str]:
    """The services to reload when a service certificate changes (each listed once)."""
    units = [str(u) for e in data["ca_trust_host_certs"] if isinstance(e, Mapping) for u in e.get("reload") or []]
    return list(dict.fromkeys(units))


def resolve_host_certs(data: Mapping[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """Every service certificate as ``(entry, cert PEM, key PEM)``, the pair checked to match.

    An entry whose cert or key is still encrypted (inventory checks) or a plan placeholder keeps
    its key as that placeholder: the plan writes key files as sensitive, never their content.
    """
    out: list[tuple[dict[str, Any], str, str]] = []
    for i, raw in enumerate(data["ca_trust_host_certs"]):
        what = f"ca_trust_host_certs[{i}]"
        entry = dict(fields(raw, what, ("name", "cert", "key"), ("key_group", "key_mode", "reload")))
        _check_name(entry["name"], what)
        entry["reload"] = [_unit(u, f"{what}: reload") for u in entry.get("reload") or []]
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
    return collect(
        data,
        {
            "ca_trust_certificates": resolve_cas,
            "ca_trust_host_certs": resolve_host_certs,
            "ca_trust_dir": lambda d: abs_path(d["ca_trust_dir"], "ca_trust_dir"),
            "ca_trust_log_dir": lambda d: abs_path(d["ca_trust_log_dir"], "ca_trust_log_dir"),
            "ca_trust_host_cert_dir": lambda d: abs_path(d["ca_trust_host_cert_dir"], "ca_trust_host_cert_dir"),
            "ca_trust_ca_host_path": lambda d: abs_path(d["ca_trust_ca_host_path"], "ca_trust_ca_host_path"),
            "ca_trust_ca_host": lambda d: (
                d["ca_trust_ca_host"] and validate_name(d["ca_trust_ca_host"], "ca_trust_ca_host")
            ),
            "ca_trust_warn_days": lambda d: d["ca_trust_warn_days"] >= 0 or _fail("ca_trust_warn_days: must be >= 0"),
        },
    )


def _fail(message: str) -> bool:
    raise DataError(message)


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


def trust_update_commands(data: Mapping[str, Any], cas: list[tuple[str, str, CaInfo]]) -> list[str]:
    """After the anchors changed: update-ca-certificates, then check that /etc/ssl/certs/<subject
    hash>.0 resolves to each CA, then one line in the audit log naming the trusted set."""
    q = shlex.quote
    anchors = [q(f"{data['ca_trust_dir']}/{n}.crt") for n, _p, _i in cas]
    checks = (
        " && ".join(
            f'test "$(readlink -f /etc/ssl/certs/$(openssl x509 -noout -subject_hash -in {a}).0)" = {a}'
            for a in anchors
        )
        or "true"
    )
    audit = ", ".join(f"{n}={i.sha256[:16]}" for n, _p, i in cas) or "none"
    log_dir = q(data["ca_trust_log_dir"])
    return [
        "update-ca-certificates --fresh >/dev/null",
        checks,
        f'install -d -m 0750 {log_dir} && echo "$(date -Is) trusted set now: {audit}" >> {log_dir}/changes.log',
    ]


def monitor_files(data: Mapping[str, Any]) -> list[ConfigItem]:
    context = template_context(data, {"monitor_script": MONITOR_SCRIPT, "header": HEADER})
    files_ = {
        MONITOR_SCRIPT: ("ca_trust/usr/local/sbin/hx-ca-trust-expiry.j2", "0755"),
        f"{MONITOR_UNIT}.service": ("ca_trust/etc/systemd/system/hx-ca-trust-expiry.service.j2", "0644"),
        f"{MONITOR_UNIT}.timer": ("ca_trust/etc/systemd/system/hx-ca-trust-expiry.timer.j2", "0644"),
    }
    # the change log's rotation, monitor or not
    rotate = ManagedFile(LOGROTATE, render(templates_root(), "ca_trust/etc/logrotate.d/hx-ca-trust.j2", context))
    if not data["ca_trust_monitor"]:
        return [*(Absent(path) for path in files_), rotate]
    return [
        *(ManagedFile(path, render(templates_root(), tpl, context), mode=mode) for path, (tpl, mode) in files_.items()),
        rotate,
    ]


# the one key other components read to derive their certificates' paths, with its default
CERT_DIR = {"ca_trust_host_cert_dir": DEFAULTS["ca_trust_host_cert_dir"]}


def host_cert_paths(data: Mapping[str, Any], name: str) -> tuple[str, str]:
    """Where service certificate ``name`` and its key are: the one place other components derive
    their TLS paths from (nginx, PostgreSQL)."""
    d = data["ca_trust_host_cert_dir"]
    return f"{d}/{name}.crt", f"{d}/private/{name}.key"


def host_cert_files(data: Mapping[str, Any], certs: list[tuple[dict[str, Any], str, str]]) -> list[ConfigItem]:
    items: list[ConfigItem] = []
    for entry, cert, key in certs:
        crt_path, key_path = host_cert_paths(data, entry["name"])
        items.append(ManagedFile(crt_path, cert))
        items.append(ManagedFile(key_path, key, mode=entry["key_mode"], group=entry["key_group"], sensitive=True))
    return items


def health(data: Mapping[str, Any], host_name: str) -> list[Any]:
    """Every trusted CA and service certificate is installed with 30+ days left."""
    from hxinfra.health import cert_days

    checks = [
        cert_days(f"{data['ca_trust_dir']}/{entry['name']}.crt", "ca_trust")
        for entry in data["ca_trust_certificates"]
        if isinstance(entry, Mapping) and "name" in entry
    ]
    checks += [
        cert_days(host_cert_paths(data, entry["name"])[0], "ca_trust")
        for entry in data["ca_trust_host_certs"]
        if isinstance(entry, Mapping) and "name" in entry
    ]
    return checks


def fetched_cas(data: Mapping[str, Any]) -> list[Fetched]:
    """The anchors a deploy reads from the CA host (``from_ca_host``): in the plan by their source and pin."""
    d, host = data["ca_trust_dir"], ca_host(data) or "the first host of ca_servers"
    return [
        Fetched(
            f"{d}/{e['name']}.crt",
            f"the CA certificate of {host} ({data['ca_trust_ca_host_path']})",
            str(e.get("sha256") or ""),
        )
        for e in data["ca_trust_certificates"]
        if isinstance(e, Mapping) and e.get("from_ca_host") and isinstance(e.get("name"), str)
    ]


def plan(data: Mapping[str, Any], host_name: str) -> list[PlanItem]:
    """The offline plan: trust anchors (those read from the CA host at deploy time by their source and
    pin), monitor and service certificates (removals of stale anchors need the host's facts)."""
    return list(_planned(data))  # vault values are placeholders here: the plan never decrypts


@by_reads  # the same anchors and certificates on every host of a group: planned once
def _planned(data: Mapping[str, Any]) -> tuple[PlanItem, ...]:
    return (
        *ca_files(data, resolve_cas(data), []),
        *fetched_cas(data),
        *monitor_files(data),
        *host_cert_files(data, resolve_host_certs(data)),
    )


def backup(data: Mapping[str, Any], host_name: str) -> Backup:
    """The service certificates and keys, and the trust anchors."""
    return Backup(paths=(str(data["ca_trust_host_cert_dir"]), str(data["ca_trust_dir"])))


def certificates(data: Mapping[str, Any], host_name: str) -> list[Certificate]:
    """The service certificates it writes (``pki expiry``/``renew``): the path on the host, and the
    controller's file a certificate given as a file was read from (``renew`` issues it again)."""
    out = []
    for entry in data["ca_trust_host_certs"]:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            source = entry.get("cert")
            local = source.source if isinstance(source, FileText) else ""
            out.append(Certificate(entry["name"], host_cert_paths(data, entry["name"])[0], local))
    return out


READY_DAYS = 30  # a certificate that ends sooner stands in the way of a first deploy


def ca_host(data: Mapping[str, Any]) -> str:
    """The host ``from_ca_host`` entries are read from: the data's, else the first CA server."""
    members = data.get("hx_members") or {}
    first = next(iter(members.get("ca_servers") or []), None)
    return str(data["ca_trust_ca_host"] or (first["name"] if isinstance(first, Mapping) else "") or "")


def readiness(data: Mapping[str, Any], host_name: str) -> list[Finding]:
    """What data alone shows before a first deploy: CA anchors fetched from the CA host without a
    pin (a reviewer of the plan cannot see what will be trusted), CAs and service certificates of the
    data that end within 30 days, and certificate data that does not check at all."""
    env = data.get("hx_environment") or "ENV"
    out: list[Finding] = []
    for i, entry in enumerate(data["ca_trust_certificates"]):
        if isinstance(entry, Mapping) and entry.get("from_ca_host") and not entry.get("sha256"):
            source = ca_host(data) or "the CA host"
            out.append(
                Finding(
                    "ca-pin",
                    f"ca_trust_certificates[{i}] ({entry.get('name')}): read from {source} at deploy time "
                    "without a sha256 pin",
                    f"hxinfra run {source} --env {env} -- openssl x509 -noout -fingerprint -sha256 -in "
                    f"{data['ca_trust_ca_host_path']}   # then set sha256: to it in the entry",
                )
            )
    now = _now(data) or dt.datetime.now(dt.UTC)
    try:
        cas = resolve_cas(data)
        certs = resolve_host_certs(data)
    except (PkiError, DataError) as e:
        return [*out, Finding("certificates", str(e), f"hxinfra inventory host {host_name} --env {env} --explain")]
    for name, _pem, info in cas:
        if info.days_left < READY_DAYS:
            out.append(
                Finding(
                    "certificates",
                    f"CA {name} ends in {info.days_left} days ({info.not_after:%Y-%m-%d})",
                    "replace its certificate in ca_trust_certificates (a new CA: trust both until the old one ends)",
                )
            )
    for entry, cert_pem, _key in certs:
        end = load_certificate(cert_pem, str(entry["name"])).not_valid_after_utc
        days = (end - now).days
        if days < READY_DAYS:
            out.append(
                Finding(
                    "certificates",
                    f"service certificate {entry['name']} ends in {days} days ({end:%Y-%m-%d})",
                    f"hxinfra pki renew --env {env} --limit {host_name}",
                )
            )
    return out
