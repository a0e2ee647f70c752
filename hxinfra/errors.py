"""Errors the CLI turns into a one-line message and exit code 1 (never a traceback)."""

from __future__ import annotations


class HxError(Exception):
    """An expected failure: bad input, missing prerequisite, failed check."""


class InventoryError(HxError):
    """Inventory or host data is invalid; raised before any connection is made."""


class LabError(HxError):
    """The local lab cannot be brought up, inspected or torn down."""
