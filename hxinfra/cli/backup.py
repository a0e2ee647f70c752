"""``hxinfra backup run|list|verify`` and ``hxinfra restore``: the guide's backup and restore
playbooks, driving the program a component declares for them (``Component.programs``) on every host. ``run``
also copies the new backup off the host, to the controller, and checks it there."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from hxinfra import guard, history
from hxinfra.adhoc import HostResult, Session, inside
from hxinfra.cli.common import ENV_OPTION, YES_OPTION, _load, echo_json, extra_vars_option, guide_vars
from hxinfra.cli.vault import vault_options
from hxinfra.components import program
from hxinfra.errors import HxError
from hxinfra.inventory import select_hosts
from hxinfra.ops.kept import undo_script
from hxinfra.plan import host_items, plan_data
from hxinfra.secrets import Keyring, default_keyring, redact

BACKUP_ID = r"^[0-9]{8}T[0-9]{6}Z$"
LIMIT = click.option("--limit", "-l", "pattern", default="all", metavar="PATTERN", help="Ansible host pattern.")
# the seed guide's variables, as its backup and restore playbooks took them with -e
BACKUP_GUIDE = {"target_hosts": "limit", "backup_services": "services"}
RESTORE_GUIDE = {"target_hosts": "limit", "recovery_point": "to_time"}
JSON = click.option("--json", "as_json", is_flag=True, help="Print the results as JSON to stdout.")


@click.group("backup")
def backup() -> None:
    """Backups made by the hosts' hx-backup (the backup deploy): run, list, verify."""


def _session_run(
    env_name: str, pattern: str, command: str, change: str | None = None, yes: bool = False
) -> tuple[Any, list[HostResult]]:
    env = _load(env_name, keyring=default_keyring())
    confirmed = guard.settle(env, yes, change) if change else None
    hosts = select_hosts(env, [pattern])
    with Session(env, hosts, change=change, confirm=confirmed) as session:
        return env, session.run_each({h: command for h in hosts}, become=None)


def _finish(results: list[dict[str, Any]], as_json: bool) -> None:
    history.set_hosts(
        [
            history.HostResult(
                r["host"],
                "ok" if r["ok"] else "failed",
                cause="" if r["ok"] else str(r.get("detail", "")),
                items=[("path", p, "restored") for p in r.get("restored", [])]
                + ([("backup", str(r["id"]), "made")] if r.get("id") else []),
            )
            for r in results
        ]
    )
    if as_json:
        echo_json(redact(json.dumps(results, indent=2)))
    else:
        for r in results:
            click.echo(redact(f"{r['host']:<14} {'ok' if r['ok'] else 'FAILED'}  {r['detail']}"))
    bad = [r["host"] for r in results if not r["ok"]]
    if bad:
        click.echo(f"hxinfra: failed on {', '.join(bad)}", err=True)
        sys.exit(1)


@backup.command("run")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default=None, metavar="PATTERN", help="Ansible host pattern [default: all].")
@click.option(
    "--services",
    default="",
    metavar="LIST",
    help="Only the hosts running these services (the names of the components' health checks).",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the copies go: DEST/<host>/<backup id>/ [default: backups/<env>].",
)
@click.option("--no-copy", is_flag=True, help="Leave the backups on the hosts only.")
@extra_vars_option("The guide's variables: target_hosts=PATTERN, backup_services=a,b.")
@YES_OPTION
@JSON
@vault_options()
@history.recorded("backup", target=lambda kw: "run")
def backup_run(
    env_name: str,
    pattern: str | None,
    services: str,
    dest: Path | None,
    no_copy: bool,
    extra: tuple[str, ...],
    yes: bool,
    as_json: bool,
    keyring: Keyring,
) -> None:
    """Make a backup on every selected host now, copy it to the controller, check its checksums.

    A host's backup holds everything its components keep (databases, WAL base backup, config
    directories); ``--services`` picks the hosts, as the guide's ``backup_services`` did.

    \b
    Examples:
      hxinfra backup run --env lab
      hxinfra backup run --env staging -e backup_services=postgresql
    """
    guide = guide_vars(extra, BACKUP_GUIDE, "backup run")
    env = _load(env_name, keyring=keyring)
    action = "make a backup"
    confirmed = guard.settle(env, yes, action)
    hosts = select_hosts(env, [pattern or guide.get("limit") or "all"])
    wanted = {s.strip() for s in (services or str(guide.get("services", ""))).split(",") if s.strip()}
    if wanted:
        hosts = _running(env, hosts, wanted)
    dest = dest or Path("backups") / env.name
    out: list[dict[str, Any]] = []
    with Session(env, hosts, change=action, confirm=confirmed) as session:
        made = session.run_each(
            {h: f"systemctl start hx-backup.service && {program('backup')} list | tail -n1" for h in hosts}, become=None
        )
        for r in made:
            backup_id = r.stdout[-1].strip() if r.ok and r.stdout else ""
            if not backup_id:
                out.append(
                    {"host": r.host, "ok": False, "id": None, "detail": " / ".join(r.stderr[-3:]) or "no backup"}
                )
                continue
            if not re.fullmatch(BACKUP_ID, backup_id):  # what a host prints never becomes a path unchecked
                out.append({"host": r.host, "ok": False, "id": None, "detail": f"not a backup id: {backup_id[:40]!r}"})
                continue
            entry: dict[str, Any] = {"host": r.host, "ok": True, "id": backup_id, "detail": backup_id}
            if not no_copy:
                entry.update(_copy(session, env, r.host, backup_id, dest))
            out.append(entry)
    _finish(out, as_json)


# a file of a backup: one path component of safe characters (what sha256sum lists and ls prints)
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}")


def _copy(session: Session, env: Any, host: str, backup_id: str, dest: Path) -> dict[str, Any]:
    """Fetch every file of one backup and check it against the backup's own SHA256SUMS.

    The host may be hostile: the id was checked by the caller; each name it lists must be a single
    file name, the names must be exactly those SHA256SUMS lists (plus itself), and every target must
    resolve inside ``dest``. Anything else fails the host, and nothing is written outside ``dest``."""
    try:
        return _copy_checked(session, env, host, backup_id, dest)
    except HxError as e:
        return {"ok": False, "detail": f"{backup_id}: {e}"}


def _copy_checked(session: Session, env: Any, host: str, backup_id: str, dest: Path) -> dict[str, Any]:
    directory = f"{env.host_data(host, with_defaults=True).get('backup_dir', '/var/backups/hx')}/{backup_id}"
    names = session.run_on(host, f"ls -1 {shlex.quote(directory)}").stdout
    odd = [n for n in names if not FILE_NAME.fullmatch(n)]
    if odd:
        raise HxError(f"the host lists file names that are not single file names: {', '.join(map(repr, odd[:3]))}")
    if "SHA256SUMS" not in names:
        raise HxError("the backup has no SHA256SUMS")
    dest.mkdir(parents=True, exist_ok=True)
    local = inside(dest, host, backup_id)
    local.mkdir(parents=True, exist_ok=True)
    local.chmod(0o700)
    sums_file = session.fetch_one(host, f"{directory}/SHA256SUMS", inside(dest, host, backup_id, "SHA256SUMS"))
    if sums_file is None:
        raise HxError("could not copy SHA256SUMS")
    sums: dict[str, str] = {}
    for line in sums_file.read_text(errors="replace").splitlines():
        digest, _, name = line.strip().partition("  ")
        if not line.strip():
            continue
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not FILE_NAME.fullmatch(name):
            raise HxError(f"SHA256SUMS has a line that is not '<sha256>  <file name>': {line[:60]!r}")
        sums[name] = digest
    if set(sums) != set(names) - {"SHA256SUMS"}:
        extra, missing = sorted(set(names) - set(sums) - {"SHA256SUMS"}), sorted(set(sums) - set(names))
        raise HxError(f"files and SHA256SUMS differ (not listed: {extra or '-'}; listed, absent: {missing or '-'})")
    for name in sorted(sums):
        if session.fetch_one(host, f"{directory}/{name}", inside(dest, host, backup_id, name)) is None:
            raise HxError(f"could not copy {name}")
    bad = [n for n, digest in sums.items() if hashlib.sha256((local / n).read_bytes()).hexdigest() != digest]
    if bad:
        return {"ok": False, "detail": f"{backup_id}: copy differs from its checksum: {', '.join(bad)}"}
    return {"copy": str(local), "detail": f"{backup_id} -> {local} ({len(sums)} files, checksums ok)"}


@backup.command("push")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", required=True, metavar="HOST", help="The host to give the backup to.")
@click.option(
    "--from",
    "source",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="A copy made by backup run: DEST/<host>/<backup id>/.",
)
@YES_OPTION
@JSON
@vault_options()
def backup_push(env_name: str, pattern: str, source: Path, yes: bool, as_json: bool, keyring: Keyring) -> None:
    """Give a host a backup from the controller's copy (a rebuilt host, a disaster recovery); it is
    checked against its checksums on the host before it counts."""
    if not re.fullmatch(BACKUP_ID.strip("^$"), source.name) or not (source / "SHA256SUMS").is_file():
        raise click.UsageError(f"--from {source}: not a backup copy (<id>/ with SHA256SUMS)")
    env = _load(env_name, keyring=keyring)
    action = f"give backup {source.name} to the host"
    confirmed = guard.settle(env, yes, action)
    hosts = select_hosts(env, [pattern])
    out = []
    with Session(env, hosts, change=action, confirm=confirmed) as session:
        for host in hosts:
            directory = f"{env.host_data(host, with_defaults=True).get('backup_dir', '/var/backups/hx')}/{source.name}"
            partial = f"{directory}.partial"
            ok = session.run_on(host, f"umask 077; rm -rf {shlex.quote(partial)}; mkdir -p {shlex.quote(partial)}").ok
            for f in sorted(source.iterdir()) if ok else []:
                ok = ok and session.put_one(host, f, f"{partial}/{f.name}")
            check = (
                session.run_on(
                    host,
                    f"cd {shlex.quote(partial)} && sha256sum --quiet -c SHA256SUMS && "
                    f"mv {shlex.quote(partial)} {shlex.quote(directory)} && echo pushed",
                )
                if ok
                else None
            )
            good = bool(check and check.ok)
            out.append(
                {
                    "host": host,
                    "ok": good,
                    "id": source.name,
                    "detail": f"{source.name} -> {directory}" if good else "copy failed or differs from its checksums",
                }
            )
    _finish(out, as_json)


@backup.command("list")
@ENV_OPTION
@LIMIT
@JSON
@vault_options()
def backup_list(env_name: str, pattern: str, as_json: bool, keyring: Keyring) -> None:
    """The backups on each host, oldest first."""
    _, results = _session_run(env_name, pattern, f"{program('backup')} list")
    _finish(
        [{"host": r.host, "ok": r.ok, "backups": r.stdout, "detail": " ".join(r.stdout) or "none"} for r in results],
        as_json,
    )


@backup.command("verify")
@ENV_OPTION
@LIMIT
@click.option("--id", "backup_id", default="", help="A backup id (default: the newest).")
@JSON
@vault_options()
def backup_verify(env_name: str, pattern: str, backup_id: str, as_json: bool, keyring: Keyring) -> None:
    """Checksums and decryption of a backup on each host; exit 1 on any corrupted one."""
    _check_id(backup_id)
    _, results = _session_run(env_name, pattern, f"{program('backup')} verify {shlex.quote(backup_id)}")
    _finish([{"host": r.host, "ok": r.ok, "detail": " / ".join((r.stdout + r.stderr)[-3:])} for r in results], as_json)


@click.command("restore")
@ENV_OPTION
@click.option("--limit", "-l", "pattern", default=None, metavar="PATTERN", help="The host(s) to restore.")
@click.option("--db", "database", default="", help="Recreate this database from its dump.")
@click.option("--path", "path", default="", help="Put this configuration path back from the archive.")
@click.option(
    "--to-time",
    "to_time",
    default="",
    metavar="'YYYY-MM-DD HH:MM:SS'",
    help="Point-in-time recovery of the whole cluster to this UTC time (base backup + archived WAL).",
)
@click.option(
    "--config",
    "component",
    default="",
    metavar="COMPONENT",
    help="Put this component's config back to its previous deployed version (checked, then live).",
)
@click.option("--id", "backup_id", default="", help="The backup to restore from (default: the newest).")
@click.option(
    "--key-from",
    "key_from",
    default="",
    metavar="ENV",
    help="Decrypt with environment ENV's backup key (a drill: its backup restored here). The key goes to "
    "the host for this restore only, in a private directory removed after; nothing of it is kept here.",
)
@YES_OPTION
@extra_vars_option("The guide's variables: target_hosts=PATTERN, recovery_point='YYYY-MM-DD HH:MM:SS'.")
@JSON
@vault_options()
@history.recorded(
    "restore",
    target=lambda kw: (
        "config" if kw.get("component") else "db" if kw.get("database") else "path" if kw.get("path") else "time"
    ),
)
def restore(
    env_name: str,
    pattern: str | None,
    database: str,
    path: str,
    to_time: str,
    component: str,
    backup_id: str,
    key_from: str,
    yes: bool,
    extra: tuple[str, ...],
    as_json: bool,
    keyring: Keyring,
) -> None:
    """Restore a database (dropped and recreated from its dump), a configuration path, from a
    backup on the host (the newest by default), the whole cluster to a point in time, or a
    component's config to the version before its last deployed change.

    \b
    Examples:
      hxinfra restore --env lab --limit hx-db-01 --db hx_webui
      hxinfra restore --env lab --limit hx-db-01 --to-time '2026-12-01 02:30:00'
      hxinfra restore --env lab --limit web_servers --config nginx
      hxinfra restore --env staging -e target_hosts=hx-db-01 -e recovery_point='2026-12-01 02:30:00' --yes
      hxinfra restore --env staging --limit hx-db-01 --db hx_webui --id 20261201T020000Z --key-from production
    """
    guide = guide_vars(extra, RESTORE_GUIDE, "restore")
    pattern = pattern or guide.get("limit")
    to_time = to_time or str(guide.get("to_time", ""))
    if not pattern:
        raise click.UsageError("say which hosts: --limit PATTERN (or -e target_hosts=PATTERN)")
    if sum(map(bool, (database, path, to_time, component))) != 1:
        raise click.UsageError("say one of --db NAME, --path PATH, --to-time TIME, --config COMPONENT")
    if to_time and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}", to_time):
        raise click.UsageError(f"--to-time {to_time!r}: 'YYYY-MM-DD HH:MM:SS' (UTC)")
    _check_id(backup_id)
    if database and not all(c.isalnum() or c == "_" for c in database):
        raise click.UsageError(f"--db {database!r}: a database name")
    if path and (not path.startswith("/") or "/../" in f"{path}/"):
        raise click.UsageError(f"--path {path!r}: an absolute path without '..'")
    if component:
        if key_from:
            raise click.UsageError("--key-from decrypts a backup: not with --config")
        _restore_config(env_name, pattern, component, as_json, yes)
        return
    if to_time:
        command = f"{program('backup')} restore-time {shlex.quote(to_time)}"
    else:
        verb = f"restore-db {shlex.quote(database)}" if database else f"restore-path {shlex.quote(path)}"
        command = f"{program('backup')} {verb} {shlex.quote(backup_id)}"
    change = "restore (it overwrites what is there)"
    if key_from:
        results = _restore_with_key(env_name, pattern, command, change, yes, key_from, keyring)
    else:
        _, results = _session_run(env_name, pattern, command, change=change, yes=yes)
    _finish([{"host": r.host, "ok": r.ok, "detail": " / ".join((r.stdout + r.stderr)[-3:])} for r in results], as_json)


def _source_key(source: Any, host: str, keyring: Keyring) -> str:
    """Environment ``source``'s backup key, as its host of the same name has it (else its first
    backup client's): read from its inventory and vault on this controller, never from its hosts."""
    from hxinfra.secrets import register_secret, reveal

    names = [host] if host in source.hosts else []
    names += [h for h in source.hosts if "backup_clients" in source.host_groups(source.host(h))]
    for name in names:
        value = source.host_data(name, with_defaults=True).get("backup_key")
        key = str(reveal(value, keyring) or "") if value is not None else ""
        if key:
            register_secret(key)
            return key
    raise HxError(f"environment {source.name} has no backup_key for {host} or any backup client")


def _restore_with_key(
    env_name: str, pattern: str, command: str, change: str, yes: bool, key_from: str, keyring: Keyring
) -> list[HostResult]:
    """``command`` (an ``hx-backup`` restore) on each host with environment ``key_from``'s backup
    key: put in a directory only root can enter (made before the key arrives), named in
    ``HX_BACKUP_KEY_FILE`` for the one command, and removed with it whatever happens."""
    import tempfile
    import uuid

    env = _load(env_name, keyring=keyring)
    source = _load(key_from, keyring=keyring)
    confirmed = guard.settle(env, yes, change)
    hosts = select_hosts(env, [pattern])
    results: list[HostResult] = []
    with Session(env, hosts, change=change, confirm=confirmed) as session, tempfile.TemporaryDirectory() as tmp:
        for host in hosts:
            local = Path(tmp) / "key"
            local.touch(mode=0o600)
            local.write_text(_source_key(source, host, keyring) + "\n", encoding="utf-8")
            directory = f"/root/.hxinfra-restore-{uuid.uuid4().hex}"  # a name of letters and digits
            private = shlex.quote(directory)
            made = session.run_on(host, f"umask 077 && mkdir -m 700 {private}")
            if made.ok and session.put_one(host, local, f"{directory}/key"):
                results.append(
                    session.run_on(
                        host,
                        f"trap 'rm -rf {private}' EXIT; chmod 600 {private}/key && "
                        f"HX_BACKUP_KEY_FILE={private}/key {command}",
                    )
                )
            else:
                session.run_on(host, f"rm -rf {private}")
                results.append(HostResult(host, rc=1, stderr=[f"could not give {host} the backup key of {key_from}"]))
            local.unlink()
    return results


def _check_id(backup_id: str) -> None:
    if backup_id and not re.fullmatch(BACKUP_ID, backup_id):
        raise click.UsageError(f"--id {backup_id!r}: a backup id such as 20261201T023000Z")


def _restore_config(env_name: str, pattern: str, name: str, as_json: bool, yes: bool) -> None:
    """Each host's config of one component back to the version before its last deployed change:
    the versions ``config_set`` kept, checked by the component's own validator, then made live."""
    env = _load(env_name, keyring=default_keyring())
    action = f"restore the previous {name} config"
    confirmed = guard.settle(env, yes, action)
    comp = next((c for c in env.components if c.name == name), None)
    able = sorted(c.name for c in env.components if c.rollback is not None and c.plan is not None)
    if comp is None or comp.rollback is None or comp.plan is None:
        raise click.UsageError(f"--config {name!r}: one of {', '.join(able)}")
    hosts = [h for h in select_hosts(env, [pattern]) if comp.applies_to(env.host_groups(env.host(h)))]
    if not hosts:
        raise click.UsageError(f"--config {name}: no host of {pattern!r} runs it")
    commands = {}
    for h in hosts:
        data = plan_data(env, h)
        validate, apply = comp.rollback(data, h)
        commands[h] = undo_script([i.path for i in host_items(env, h, only=name)], validate, apply, name)
    with Session(env, hosts, change=action, confirm=confirmed) as session:
        results = session.run_each(commands, become=None)
    _finish(
        [
            {
                "host": r.host,
                "ok": r.ok,
                "restored": [x.split(" ", 1)[1] for x in r.stdout if x.startswith("restored ")],
                "detail": " / ".join((r.stdout + r.stderr)[-3:]),
            }
            for r in results
        ],
        as_json,
    )


def _running(env: Any, hosts: list[str], wanted: set[str]) -> list[str]:
    """The hosts whose components run one of the ``wanted`` services (their health checks' names)."""
    from hxinfra.health import component_checks

    by_host = {
        h: {c.service for c in component_checks(env.components, env.host_groups(env.host(h)), plan_data(env, h), h)}
        for h in hosts
    }
    known = set().union(*by_host.values()) if by_host else set()
    if wanted - known:
        raise click.UsageError(
            f"--services: {', '.join(sorted(wanted - known))} unknown here; "
            f"the selected hosts run {', '.join(sorted(known))}"
        )
    return [h for h in hosts if by_host[h] & wanted]
