"""Small helpers shared by deploy modules (kept here so deploys stay declarative)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hxinfra.components import Component
from hxinfra.vault import reveal


def component_data(component: Component, data: Any, extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A plain dict of the component's keys (plus ``extra_keys``) from pyinfra host data.

    Inside a ``@deploy`` the component's ``data_defaults`` are part of ``host.data``; outside
    one (the offline plan) the caller passes an already merged mapping. Vaulted values are
    decrypted here, only for the keys the component reads, into masked-repr ``Secret`` strings.
    """
    keys = sorted(component.all_keys()) + list(extra_keys)
    if isinstance(data, Mapping):
        merged = {**component.defaults, **data}
        return {k: reveal(merged.get(k)) for k in keys}
    return {k: reveal(data.get(k)) for k in keys}


def is_deploy_file(namespace: Mapping[str, Any]) -> bool:
    """True when a module runs as a pyinfra deploy *file* rather than being imported.

    pyinfra executes deploy files with only ``__file__`` set; an imported module always has
    ``__name__``. This lets ``deploys/nginx.py`` be both ``pyinfra INVENTORY deploys/nginx.py``
    and ``from deploys.nginx import nginx``.
    """
    return "__name__" not in namespace
