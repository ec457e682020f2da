"""Who a user is to the server: a role and a tenant (spec section 13.1).

A module of its own with no imports beyond the standard library, so that the `kefu` command can offer the roles
without loading the crypto stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["NOBODY", "ROLES", "Profile", "Role"]


class Role(enum.StrEnum):
    """What an app may be. A misspelt role would leave an app with no rights at all, so unknown roles are refused
    (`Role(value)` raises ValueError)."""

    APP = "app"
    """A plain messaging client (the desk treats it as a visitor)."""
    VISITOR = "visitor"
    """A customer."""
    AGENT = "agent"
    """Staff who serve conversations."""
    SUPERVISOR = "supervisor"
    """Staff who oversee groups: watch, whisper, transfer, end."""
    INTEGRATION = "integration"
    """A bank system acting for many customers."""


ROLES = tuple(role.value for role in Role)
"""The role names, in declaration order (the CLI's choices)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A user's role and tenant (from its app record; apps without one are plain apps of tenant "")."""

    role: Role
    tenant: str


NOBODY = Profile(Role.APP, "")
"""The profile of a user with no app record."""
