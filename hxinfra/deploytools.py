"""Small helpers shared by deploy modules (kept here so deploys stay declarative)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hxinfra.components import Component, one_line_problems
from hxinfra.frozen import FrozenDict, freeze_values
from hxinfra.guard import PROTECTED_KEY, check_plain
from hxinfra.inventory import SEALED_KEY
from hxinfra.options import selection_of
from hxinfra.paths import read_project_file
from hxinfra.secrets import VaultError, iter_vaulted, reveal
from hxinfra.validate import DataError


def component_data(
    component: Component, data: Any, extra_keys: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None
) -> FrozenDict:
    """A read-only dict of the component's keys (plus ``extra_keys``) from pyinfra host data.

    Inside a ``@deploy`` the component's ``data_defaults`` are part of ``host.data``; outside
    one (the offline plan) the caller passes an already merged mapping. Vaulted values are
    decrypted here, only for the keys the component reads, into masked-repr ``Secret`` strings,
    and then held to the one-line rule like every other value (an error names the key, never
    the value). A host whose vault files could not be opened stops here, naming them, and so does a
    run on a protected environment that nobody confirmed (:func:`hxinfra.guard.check_plain`).
    ``defaults`` are the defaults of ``extra_keys`` that another component owns (inside this deploy,
    only this component's defaults are part of the host data).
    """
    protected = data.get(PROTECTED_KEY)
    if protected:  # the plain pyinfra CLI or pyinfra's API on a protected environment: confirmed?
        check_plain(str(protected), data)
    sealed = data.get(SEALED_KEY)
    if sealed:
        raise VaultError(f"component {component.name} needs this host's vault data: {'; '.join(sealed)}")
    keys = sorted(component.all_keys()) + list(extra_keys)
    merged = {**component.defaults, **data} if isinstance(data, Mapping) else data
    fallback = dict(defaults or {})
    out = {k: reveal(v if (v := merged.get(k)) is not None else fallback.get(k)) for k in keys}
    if component.load is not None:  # data from elsewhere (a library user's inventory): its files read now
        out.update(component.load({k: out[k] for k in component.all_keys()}, read_project_file))
    problems = [p for k, v in out.items() if k not in component.multiline for p in one_line_problems(k, v)]
    if not problems and component.check is not None and any(iter_vaulted(merged.get(k)) for k in keys):
        problems = component.check(out)  # vault values, checked now that they are decrypted
    if problems:
        raise DataError("; ".join(f"{key}: {problem}" for key, problem in problems))
    return freeze_values(out)  # read-only, as the inventory's data: a deploy derives, never changes


def is_deploy_file(namespace: Mapping[str, Any]) -> bool:
    """True when a module runs as a pyinfra deploy *file* rather than being imported.

    pyinfra executes deploy files with only ``__file__`` set; an imported module always has
    ``__name__``. This lets ``deploys/site.py`` be both ``pyinfra INVENTORY deploys/site.py`` and
    ``from deploys.site import site`` (components are packages: pyinfra runs their ``@deploy``
    function by name, ``pyinfra INVENTORY deploys.nginx.nginx``).
    """
    return "__name__" not in namespace


def step(component: Component, data: Any, *tags: str) -> bool:
    """Whether a deploy step with these tags runs, under ``--tags``/``--skip-tags`` (Ansible's rules).

    A step's tags are its component's name plus ``tags`` (``packages``, ``config``, ``service``,
    ``security``...). Selection comes from host data (``hx_tags``/``hx_skip_tags``), so it works
    the same under ``hxinfra deploy --tags`` and ``pyinfra ... --data hx_tags=config``; the rule
    itself is :meth:`hxinfra.options.TagSelection.runs`. A tag the component does not declare is a
    programming error, raised on every host whatever the selection.
    """
    unknown = set(tags) - set(component.tags) - {"always"}
    if unknown:
        raise ValueError(f"component {component.name}: step tags {sorted(unknown)} not declared in its tags")
    return selection_of(data).runs({component.name, *tags})


def serve(unit: str, changes: list[Any], url: str, timeout: int, what: str) -> Any:
    """A service's handler steps, the same for every long-running component: reload systemd after
    a unit change, start and enable ``unit``, restart it after an install or a validated change
    (not when it was just started), then wait until ``url`` answers 200 from the host, or fail with
    the unit's last log lines. Returns the start operation."""
    from urllib.parse import urlsplit

    from pyinfra.operations import systemd
    from pyinfra.operations.util import any_changed

    from hxinfra.ops.probe import http_ready
    from hxinfra.ops.system import service

    changed = any_changed(*changes) if changes else (lambda: False)
    systemd.daemon_reload(name="Reload systemd after a unit change", _if=changed)
    started = service(name=f"Start and enable {what}", service=unit, running=True, enabled=True)
    service(
        name=f"Restart {what} after an install or a validated change",
        service=unit,
        restarted=True,
        _if=lambda: changed() and not started.did_change(),
    )
    path = urlsplit(url).path or "/"
    http_ready(
        name=f"Check that {what} answers {path}",
        url=url,
        timeout=timeout,
        unit=unit,
        _if=any_changed(started, *changes),
    )
    return started


def guarded(what: str, unit: str, paths: list[str], apply: str, undo: str, seconds: int, when: Any) -> None:
    """Make a change that could cut the controller off live without risk (sshd, the firewall): arm a
    timer on the host that puts the previous ``paths`` back and runs ``undo`` in ``seconds``, run
    ``apply``, log in anew from the controller, and only then disarm the timer. ``when``: the
    ``_if`` of all three (the config change)."""
    from pyinfra.operations import server

    from hxinfra.ops.rollback import arm_rollback, confirm_reconnect

    arm_rollback(
        name=f"Arm a timer that puts the previous {what} back unless the controller logs in again",
        unit=unit,
        paths=paths,
        then=undo,
        seconds=seconds,
        _if=when,
    )
    server.shell(name=f"Make the {what} live", commands=[apply], _if=when)
    confirm_reconnect(
        name=f"Log in anew from the controller, then disarm the {what}'s rollback timer", unit=unit, _if=when
    )
