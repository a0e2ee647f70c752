"""The one place of hidden state: what ``load_environment`` hands to the inventory file it runs.

An inventory file is Python that pyinfra (or hxinfra) executes; it calls :func:`~hxinfra.inventory.environment`,
which cannot be given arguments by the one who runs the file. The run's extra vars (``-e``), an
environment already built for this run, and whether hxinfra itself is the loader reach it here, set
only for the time of one load (context managers), never as lasting module state elsewhere."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hxinfra.datafiles import parse_extra_vars
from hxinfra.errors import InventoryError

EXTRA_VARS_ENV = "HXINFRA_EXTRA_VARS"

# Each is set for the time of one load or one run (a context manager below) and read by the
# environment() call inside the inventory file; a ContextVar, so a greenlet or thread of another
# run never sees it.
_EXTRA: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("hx_extra_vars", default=None)
# (an Environment: typed as object here, so that this module imports nothing of the inventory's)
_REUSED: contextvars.ContextVar[Mapping[str, object] | None] = contextvars.ContextVar("hx_reused", default=None)
_OWN_LOAD: contextvars.ContextVar[bool] = contextvars.ContextVar("hx_own_load", default=False)


def extra_vars_from_env() -> dict[str, Any]:
    """Extra vars the ``hxinfra`` CLI passes down to the inventory (highest layer).

    Those of the load running now (:func:`extra_vars_layer`), else ``HXINFRA_EXTRA_VARS`` (the plain
    pyinfra CLI): the ``-e`` arguments as a JSON list (so ``@vault.yml`` files are decrypted here,
    with this process's vault passwords), or a JSON object of plain values.
    """
    given = _EXTRA.get()
    if given is not None:
        return dict(given)
    raw = os.environ.get(EXTRA_VARS_ENV)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InventoryError(f"{EXTRA_VARS_ENV} is not valid JSON: {e}") from e
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_extra_vars(value)
    if not isinstance(value, dict):
        raise InventoryError(f"{EXTRA_VARS_ENV} must be a JSON list of -e arguments or a JSON object")
    return value


@contextlib.contextmanager
def extra_vars_layer(extra_vars: Mapping[str, Any] | None) -> Iterator[None]:
    """Make ``extra_vars`` the top layer of environments built while the inventory file runs."""
    if extra_vars is None:
        yield
        return
    token = _EXTRA.set(extra_vars)
    try:
        yield
    finally:
        _EXTRA.reset(token)


@contextlib.contextmanager
def reusing(env: Any) -> Iterator[None]:
    """While pyinfra runs in this process, its own load of ``env``'s inventory file returns ``env``.

    ``hxinfra deploy`` loads and validates the inventory (and opens its vault values) before anything
    connects; pyinfra then executes the same file to build its inventory. Handing it the same object
    means one load, one validation and one decryption per run, whatever the number of batches.
    """
    token = _REUSED.set({**(_REUSED.get() or {}), str(Path(env.file).resolve()): env})
    try:
        yield
    finally:
        _REUSED.reset(token)


def reused(file: str | Path) -> object | None:
    """The environment :func:`reusing` holds for inventory ``file``, if any."""
    held = _REUSED.get()
    return held.get(str(Path(file).resolve())) if held else None


@contextlib.contextmanager
def own_load() -> Iterator[None]:
    """hxinfra itself runs an inventory file (not pyinfra): see :func:`is_own_load`."""
    token = _OWN_LOAD.set(True)
    try:
        yield
    finally:
        _OWN_LOAD.reset(token)


def is_own_load() -> bool:
    """Whether the inventory file running now was run by hxinfra itself (:func:`own_load`): nobody
    then reads the module-level groups it exports, and a protected environment is guarded by the
    verb that loads it rather than by the plain pyinfra CLI's check."""
    return _OWN_LOAD.get()
