"""Run a deploy on an environment's hosts, batch by batch, and summarise what happened per host.

The inventory is loaded and validated here first, with the run's own top layer (extra vars, tags),
so bad data fails before any connection; the guard settles a protected environment's confirmation;
the vault values the selected hosts read are opened. Each ``--serial`` batch is then one run of
pyinfra's API in this process (:func:`hxinfra.engine.run_batch`): no child start, no second load
of the inventory, each host's outcome read back as objects.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hxinfra import guard
from hxinfra.batch import remember as remember_batched_keys
from hxinfra.engine import patch_for_gevent, run_batch
from hxinfra.errors import HxError
from hxinfra.inventory import Environment, inventory_file, load_environment, select_hosts
from hxinfra.options import RunOptions
from hxinfra.outcome import DeployReport, HostReport
from hxinfra.patterns import batches, exceeds, shard
from hxinfra.runlog import Sink
from hxinfra.secrets import Keyring, VaultError, default_keyring, iter_vaulted, set_default_keyring

__all__ = ["DeployReport", "HostReport", "deploy_target", "known_tags", "patch_for_gevent", "run_deploy"]


def deploy_target(root: Path, deploy: str) -> tuple[str, str]:
    """What pyinfra runs for a deploy name, and the name itself.

    A deploy file (``site`` is ``deploys/site.py``, or any path to a ``.py`` file), or a component
    package's ``@deploy`` function (``nginx`` is ``deploys.nginx.nginx``, as the plain pyinfra CLI
    runs it too).
    """
    path = Path(deploy)
    if path.suffix == ".py" and path.is_file():
        return str(path.resolve()), path.stem
    if (root / "deploys" / f"{deploy}.py").is_file() and not deploy.startswith("_") and deploy != "common":
        return str(root / "deploys" / f"{deploy}.py"), deploy
    if deploy.isidentifier() and (root / "deploys" / deploy / "__init__.py").is_file():
        return f"deploys.{deploy}.{deploy}", deploy
    known = sorted(
        [p.stem for p in (root / "deploys").glob("*.py") if not p.stem.startswith("_") and p.stem != "common"]
        + [p.parent.name for p in (root / "deploys").glob("*/__init__.py")]
    )
    raise HxError(f"unknown deploy {deploy!r} (known: {', '.join(known)})")


def _prepare_secrets(env: Environment, keyring: Keyring, hosts: Sequence[str], deploy: str) -> bool:
    """Decrypt the vault values the deploy reads on the selected hosts, here, before anything connects.

    Only those: a vault value of another component, or of a host outside ``--limit``, is never
    decrypted, and a missing password for its vault id does not stop the run. A vault file the
    selected hosts read that could not be opened is an error now, naming the file and vault id.
    A wrong password fails with one line; every plaintext is registered so pyinfra's output is
    redacted on its way through. True when some value was opened.
    """
    sealed = env.sealed(hosts)
    if sealed:
        raise VaultError("cannot open the vault data of the selected hosts: " + "; ".join(sealed))
    named = [c for c in env.components if c.name == deploy]
    vaulted = []
    for name in hosts:
        data = env.host_data(name)
        groups = env.host_groups(env.host(name))
        if named or deploy == "site":
            readers = named or [c for c in env.components if c.applies_to(groups)]
            keys = {k for c in readers for k in c.all_keys()} | {k for k in data if k.startswith("hx_")}
        else:  # a deploy file of its own may read any key of the host
            keys = set(data)
        vaulted += [v for k in keys if k in data for v in iter_vaulted(data[k])]
    for value in vaulted:
        value.reveal(keyring)
    return bool(vaulted) or keyring.resolved


def run_deploy(
    root: Path,
    env_name: str,
    deploy: str,
    options: RunOptions | None = None,
    *,
    keyring: Keyring | None = None,
    log: Sink | None = None,
    confirm: guard.Confirm = None,
) -> DeployReport:
    """Validate the inventory, run pyinfra on it batch by batch and return a per-host report.

    ``options`` is the run as asked (:meth:`RunOptions.from_cli`): its extra vars and tag selection are
    the top data layer, handed to the environment as they are; ``keyring`` holds the vault passwords
    (the process default when ``None``). With ``options.serial`` the WHOLE deploy runs on one batch of
    hosts after another (Ansible's meaning); a batch whose failure rate is above
    ``options.max_fail_percentage`` stops the rollout and later batches are never started.

    A run that changes a protected environment needs ``confirm``: the environment's name, or a
    function of the loaded environment that returns it (the CLI's prompt); it is settled before
    host selection and before anything connects (:mod:`hxinfra.guard`).
    """
    options = options or RunOptions()
    started = time.monotonic()
    keyring = keyring or default_keyring()
    set_default_keyring(keyring)
    inv = inventory_file(root, env_name)
    dep, deploy_name = deploy_target(root, deploy)
    # validate in-process first, with the run's own top layer: a clear error before anything connects
    env = load_environment(inv, extra_vars=options.data_layer())
    if not env.hosts:
        raise HxError(f"environment {env_name} has no hosts" + (" (is the lab up?)" if env_name == "lab" else ""))
    if not options.check:  # before host selection, before anything connects
        guard.require(env, confirm, f"deploy {deploy_name}")
    options.check_tags(known_tags(env))
    log = log or sys.stderr
    selected = _of_its_groups(env, deploy_name, select_hosts(env, options.limit), bool(options.limit), log)
    if options.shard is not None:
        selected = shard(selected, *options.shard)
    plan = batches(selected, options.serial)
    _prepare_secrets(env, keyring, selected, deploy_name)
    report = DeployReport(
        0,
        options.check,
        {h: HostReport(h, status="skipped") for h in selected},
        batches=plan,
        shard=options.shard_label,
    )
    if not selected:  # a shard, or a component's groups, may hold no host of the selection: nothing to do
        if options.shard is not None:
            log.write(f"shard {report.shard}: no host of the selection falls in it\n")
        report.seconds = time.monotonic() - started
        return report
    for number, batch in enumerate(plan, 1):
        if len(plan) > 1:
            log.write(f"\n== batch {number}/{len(plan)}: {', '.join(batch)}\n")
            log.flush()
        with guard.engine_run(env.name):  # confirmed above, or a check: the deploys' own guard lets it run
            try:
                sub = run_batch(root, env, dep, batch, options, log)
            finally:
                remember_batched_keys()
        report.returncode = report.returncode or sub.returncode
        report.operations += [{**op, "batch": number} for op in sub.operations]
        for name, hr in sub.hosts.items():
            hr.batch = number
            report.hosts[name] = hr
        failed = sum(1 for h in batch if report.hosts[h].status in ("failed", "unreachable"))
        if len(plan) > 1:  # progress between batches: hosts done and every failure so far
            done = [h for b in plan[:number] for h in b]
            bad = [h for h in done if report.hosts[h].status in ("failed", "unreachable")]
            log.write(
                f"== progress: {len(done)}/{len(selected)} hosts done, {len(bad)} failed"
                + (f" ({', '.join(bad)})" if bad else "")
                + "\n"
            )
            log.flush()
        if number < len(plan) and exceeds(failed, len(batch), options.max_fail_percentage):
            left = [h for b in plan[number:] for h in b]
            report.stopped = (
                f"batch {number} failed on {failed} of {len(batch)} host(s), above --max-fail-percentage "
                f"{options.max_fail_percentage:g}; never started: {', '.join(left)}"
            )
            break
    report.seconds = time.monotonic() - started
    return report


def _of_its_groups(env: Environment, deploy: str, selected: list[str], limited: bool, log: Sink) -> list[str]:
    """Without ``--limit``, a component's own deploy runs on the hosts of its groups, as the site
    applies it and an Ansible play runs on its ``hosts:`` (an AD join on a domain controller would
    try to join it to its own domain); the others are named, left out. A host that ``--limit``
    names runs it wherever it is (a spare host outside the topology, on purpose), with a note."""
    contract = next((c for c in env.components if c.name == deploy), None)
    if contract is None:
        return selected
    inside = {h for h in selected if contract.applies_to(env.host_groups(env.host(h)))}
    outside = ", ".join(h for h in selected if h not in inside)
    groups = ", ".join(contract.groups)
    if outside and limited:
        log.write(
            f"{deploy} applies to the hosts of {groups}; --limit names hosts outside them, which run it: {outside}\n"
        )
    elif outside:
        none = "" if inside else " (no host is in them)"
        log.write(f"{deploy} applies to the hosts of {groups}: left out {outside}{none}\n")
    log.flush()
    return selected if limited else [h for h in selected if h in inside]


def known_tags(env: Environment) -> set[str]:
    """Every tag a step of this environment's components may carry: component names and their tags."""
    return {t for comp in env.components for t in (comp.name, *comp.tags)}
