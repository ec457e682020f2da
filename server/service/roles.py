"""The roles an app may have (spec section 13.1). A module of its own so that the CLI can offer them without
loading the crypto stack."""

from __future__ import annotations

__all__ = ["ROLES"]

ROLES = ("app", "visitor", "agent", "supervisor", "integration")
"""What an app may be: "app" is a plain messaging client (the desk treats it as a visitor), "visitor" a customer,
"agent" and "supervisor" staff, "integration" a bank system acting for many customers. A misspelt role would leave
an app with no rights at all, so unknown roles are refused."""
