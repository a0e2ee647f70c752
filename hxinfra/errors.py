"""Errors the CLI turns into a one-line message and exit code 1 (never a traceback)."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError


class HxError(PyinfraError):
    """An expected failure: bad input, missing prerequisite, failed check.

    A pyinfra error, so that the plain ``pyinfra`` CLI prints it as one line (its file and
    message), not a traceback, when an inventory or deploy file raises it.
    """


class InventoryError(HxError):
    """Inventory or host data is invalid; raised before any connection is made."""


class LabError(HxError):
    """The local lab cannot be brought up, inspected or torn down."""
