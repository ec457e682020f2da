"""The service directory: tenants, skill groups, agents, supervisors and plugins, from one TOML file.

Who may act as what comes from two places: an app's *role* and *tenant* are in its app record (`kefu app add
--role agent --tenant bank`), and what an agent or supervisor serves is here. The file is data an operator keeps
under version control and reloads with SIGHUP::

    [tenants.bank]
    default_group = "general"        # where a conversation goes when neither the visitor nor a rule names a group
    rules = "route.lua"              # optional routing rule (section 13.5), relative to this file

    [groups.general]
    tenant = "bank"
    skills = []                      # what an agent needs to serve the group
    overflow_to = "backup"           # optional: where a conversation waiting too long goes
    overflow_after_s = 60.0
    max_queue = 1000

    [agents.alice]                   # an app with role "agent"
    groups = ["general"]
    skills = ["cards", "zh"]
    max_concurrent = 5

    [supervisors.sam]                # an app with role "supervisor"
    groups = ["general"]

    [[plugins]]                      # AI plugins (section 13.8), by entry point
    name = "faq"
    kind = "keyword"
    modes = ["auto_reply", "classify"]
    timeout_s = 1.0
    options = { faq = [ { keywords = ["挂失"], answer = "..." } ] }

Without a file, or with a file that declares no group, every tenant has one group "general" that needs no skill, so
an agent created with `kefu app add --role agent --tenant bank` serves the visitors of tenant "bank" at once
(capacity DEFAULT_MAX_CONCURRENT). A group is known by its tenant and name (`GroupKey`): the default groups of two
tenants share a name, never a queue. A file that declares groups declares every tenant's: a tenant it gives none has
none.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_GROUP",
    "AgentEntry",
    "Directory",
    "DirectoryError",
    "GroupEntry",
    "GroupKey",
    "TenantEntry",
    "load_directory",
]

DEFAULT_GROUP = "general"
DEFAULT_MAX_CONCURRENT = 5
"""Conversations an agent holds at once unless the directory says otherwise (a common contact-centre setting)."""
MAX_CONCURRENT_LIMIT = 1000
"""No agent can hold more: a bound on one agent's fan-out and on the routing scan."""
DEFAULT_MAX_QUEUE = 10_000
"""Waiting conversations per group: a bound on the queue's memory and on the scans that walk it. An OPEN or TRANSFER
that would wait beyond it is refused with CONFLICT (not the fatal OVERLOADED: an integration's connection carries
many customers), and nothing overflows into a full group (section 13.5)."""
MAX_RULE_BYTES = 64 * 1024
"""A routing rule is a short script; a larger file is a mistake (or an attack on the Lua compiler)."""


class DirectoryError(ValueError):
    """The directory file is invalid; the message names the entry and key."""


@dataclass(frozen=True, slots=True)
class TenantEntry:
    """A tenant: its default group and optional routing rule source."""

    name: str
    default_group: str = DEFAULT_GROUP
    rule_source: str | None = None
    rule_name: str = ""


GroupKey = tuple[str, str]
"""(tenant, group name): what names a group, its queue included."""


@dataclass(frozen=True, slots=True)
class GroupEntry:
    """A skill group of one tenant."""

    name: str
    tenant: str = ""
    skills: frozenset[str] = frozenset()
    overflow_to: str | None = None
    overflow_after_s: float = math.inf
    max_queue: int = DEFAULT_MAX_QUEUE

    @property
    def key(self) -> GroupKey:
        """(tenant, name)."""
        return (self.tenant, self.name)


@dataclass(frozen=True, slots=True)
class AgentEntry:
    """What an agent serves; `groups` empty means every group of its tenant whose skills it has."""

    name: str
    groups: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    max_concurrent: int = DEFAULT_MAX_CONCURRENT


@dataclass(frozen=True, slots=True)
class Directory:
    """The whole directory. `agents`/`supervisors` hold only configured entries; see `agent()`."""

    tenants: Mapping[str, TenantEntry] = field(default_factory=dict)
    groups: Mapping[str, GroupEntry] = field(default_factory=dict)
    agents: Mapping[str, AgentEntry] = field(default_factory=dict)
    supervisors: Mapping[str, frozenset[str]] = field(default_factory=dict)
    plugins: tuple[Mapping[str, Any], ...] = ()

    def tenant(self, name: str) -> TenantEntry:
        """The tenant's entry (an unlisted tenant gets the defaults)."""
        return self.tenants.get(name) or TenantEntry(name)

    def group(self, tenant: str, name: str) -> GroupEntry | None:
        """The tenant's group of that name: a configured one, or the tenant's embedded default group when no group
        is configured; None if the tenant has no such group (another tenant's group is none of its own)."""
        entry = self.groups.get(name)
        if entry is None and name == DEFAULT_GROUP and not self.groups:
            return GroupEntry(DEFAULT_GROUP, tenant)
        return entry if entry is not None and entry.tenant == tenant else None

    def agent(self, name: str) -> AgentEntry:
        """The agent's entry; an unlisted agent serves the groups of its tenant it has the skills for."""
        return self.agents.get(name) or AgentEntry(name)

    def serves(self, agent: AgentEntry, group: GroupEntry, tenant: str) -> bool:
        """Whether `agent` (of `tenant`) may take conversations of `group`."""
        if group.tenant != tenant:
            return False
        if agent.groups:
            return group.name in agent.groups
        return group.skills <= agent.skills

    def supervised_groups(self, supervisor: str) -> frozenset[str]:
        """The groups a supervisor oversees."""
        return self.supervisors.get(supervisor, frozenset())


def load_directory(path: Path | None) -> Directory:
    """Parse and check the directory file; None gives the embedded default."""
    if path is None:
        return Directory()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"{path}: {exc}") from None
    unknown = set(data) - {"tenants", "groups", "agents", "supervisors", "plugins"}
    if unknown:
        raise DirectoryError(f"{path}: unknown sections {sorted(unknown)}")
    groups = {name: _group(name, _table(raw, f"groups.{name}")) for name, raw in _section(data, "groups").items()}
    tenants = {
        name: _tenant(name, _table(raw, f"tenants.{name}"), path.parent)
        for name, raw in _section(data, "tenants").items()
    }
    agents = {name: _agent(name, _table(raw, f"agents.{name}")) for name, raw in _section(data, "agents").items()}
    supervisors = {
        name: frozenset(_strings(_table(raw, f"supervisors.{name}").get("groups", []), f"supervisors.{name}.groups"))
        for name, raw in _section(data, "supervisors").items()
    }
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
        raise DirectoryError("plugins must be an array of tables ([[plugins]])")
    directory = Directory(tenants, groups, agents, supervisors, tuple(plugins))
    _check_references(directory)
    return directory


def _check_references(d: Directory) -> None:
    for g in d.groups.values():
        if g.overflow_to is not None and g.overflow_to not in d.groups:
            raise DirectoryError(f"groups.{g.name}.overflow_to names unknown group {g.overflow_to!r}")
        if g.overflow_to is not None and d.groups[g.overflow_to].tenant != g.tenant:
            raise DirectoryError(f"groups.{g.name}.overflow_to crosses tenants")
    for t in d.tenants.values():
        if d.groups and t.default_group not in d.groups:
            raise DirectoryError(f"tenants.{t.name}.default_group names unknown group {t.default_group!r}")
    for a in d.agents.values():
        for name in a.groups - set(d.groups):
            raise DirectoryError(f"agents.{a.name}.groups names unknown group {name!r}")
    for s, groups in d.supervisors.items():
        for name in groups - set(d.groups):
            raise DirectoryError(f"supervisors.{s}.groups names unknown group {name!r}")


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise DirectoryError(f"{name} must be a table")
    return value


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DirectoryError(f"{where} must be a table")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DirectoryError(f"{where} must be a list of non-empty strings")
    return value


def _only(raw: Mapping[str, Any], where: str, keys: set[str]) -> None:
    unknown = set(raw) - keys
    if unknown:
        raise DirectoryError(f"{where}: unknown keys {sorted(unknown)}")


def _group(name: str, raw: Mapping[str, Any]) -> GroupEntry:
    where = f"groups.{name}"
    _only(raw, where, {"tenant", "skills", "overflow_to", "overflow_after_s", "max_queue"})
    tenant = raw.get("tenant", "")
    overflow_to = raw.get("overflow_to")
    after = raw.get("overflow_after_s", math.inf)
    max_queue = raw.get("max_queue", DEFAULT_MAX_QUEUE)
    if not isinstance(tenant, str) or (overflow_to is not None and not isinstance(overflow_to, str)):
        raise DirectoryError(f"{where}: tenant and overflow_to are strings")
    if not isinstance(after, int | float) or after <= 0:
        raise DirectoryError(f"{where}.overflow_after_s must be a positive number of seconds")
    if not isinstance(max_queue, int) or not 1 <= max_queue <= 1_000_000:
        raise DirectoryError(f"{where}.max_queue must be an integer from 1 to 1000000")
    skills = frozenset(_strings(raw.get("skills", []), f"{where}.skills"))
    return GroupEntry(name, tenant, skills, overflow_to, float(after), max_queue)


def _tenant(name: str, raw: Mapping[str, Any], base: Path) -> TenantEntry:
    where = f"tenants.{name}"
    _only(raw, where, {"default_group", "rules"})
    default_group = raw.get("default_group", DEFAULT_GROUP)
    rules = raw.get("rules")
    if not isinstance(default_group, str) or (rules is not None and not isinstance(rules, str)):
        raise DirectoryError(f"{where}: default_group and rules are strings")
    if rules is None:
        return TenantEntry(name, default_group)
    rule_path = base / rules
    try:
        raw_source = rule_path.read_bytes()
    except OSError as exc:
        raise DirectoryError(f"{where}.rules: {exc}") from None
    if len(raw_source) > MAX_RULE_BYTES:
        raise DirectoryError(f"{where}.rules: {rule_path} is over {MAX_RULE_BYTES} bytes")
    return TenantEntry(name, default_group, raw_source.decode("utf-8", "replace"), rule_path.name)


def _agent(name: str, raw: Mapping[str, Any]) -> AgentEntry:
    where = f"agents.{name}"
    _only(raw, where, {"groups", "skills", "max_concurrent"})
    max_concurrent = raw.get("max_concurrent", DEFAULT_MAX_CONCURRENT)
    if not isinstance(max_concurrent, int) or not 0 <= max_concurrent <= MAX_CONCURRENT_LIMIT:
        raise DirectoryError(f"{where}.max_concurrent must be an integer from 0 to {MAX_CONCURRENT_LIMIT}")
    groups = frozenset(_strings(raw.get("groups", []), f"{where}.groups"))
    skills = frozenset(_strings(raw.get("skills", []), f"{where}.skills"))
    return AgentEntry(name, groups, skills, max_concurrent)
