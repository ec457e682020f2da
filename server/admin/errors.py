"""The one error the administrative operations raise."""

from __future__ import annotations

__all__ = ["AdminError"]


class AdminError(Exception):
    """An operation refused or failed for a reason the operator can act on (the message says which)."""
