"""Building the desk from the configuration: directory, routing rules, AI plugins and the sentiment scorer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ..engine.ports import Profiles, ServiceHost
from .desk import Desk
from .directory import Directory, DirectoryError, load_directory
from .plugins import PluginConfig, PluginError, PluginHost
from .rules import RuleEngine, RuleError, RuleLimits

__all__ = [
    "ServiceSetupError", "build_desk", "directory_changes", "load_service", "reload_desk", "rule_engines",
    "start_desk", "tick_forever",
]  # fmt: skip


class ServiceSetupError(ValueError):
    """The service directory, a rule or a plugin is invalid: the server does not start (or keeps the old one)."""


def _limits(config: Any) -> RuleLimits:
    s = config.service
    return RuleLimits(
        instructions=s.rule_instructions, memory_bytes=s.rule_memory_mb << 20, seconds=s.rule_timeout_ms / 1000
    )


def rule_engines(directory: Directory, config: Any) -> dict[str, RuleEngine]:
    """One compiled engine per tenant with a rule."""
    engines: dict[str, RuleEngine] = {}
    for tenant in directory.tenants.values():
        if tenant.rule_source is not None:
            try:
                engines[tenant.name] = RuleEngine(tenant.rule_source, name=tenant.rule_name, limits=_limits(config))
            except RuleError as exc:
                for engine in engines.values():
                    engine.close()
                raise ServiceSetupError(f"tenants.{tenant.name}.rules: {exc}") from None
    return engines


def plugin_host(directory: Directory, on_outcome: Any) -> PluginHost | None:
    """The AI plugins the directory configures, loaded (None if there are none)."""
    if not directory.plugins:
        return None
    try:
        host = PluginHost([PluginConfig.from_mapping(raw) for raw in directory.plugins], on_outcome=on_outcome)
        host.load()
    except PluginError as exc:
        raise ServiceSetupError(f"plugins: {exc}") from None
    return host


def _directory(config: Any) -> Directory:
    try:
        return load_directory(config.directory_path)
    except DirectoryError as exc:
        raise ServiceSetupError(str(exc)) from None


def load_service(config: Any, on_outcome: Any = None) -> tuple[Directory, dict[str, RuleEngine], PluginHost | None]:
    """The directory, its rules compiled and its plugins loaded, as the desk is built with them; ServiceSetupError on
    the first problem, with nothing left open. `kefu check-config` and `kefu serve` (before it writes anything) check
    a configuration with it (`kefu.server.startcheck`)."""
    directory = _directory(config)
    engines = rule_engines(directory, config)
    try:
        plugins = plugin_host(directory, on_outcome)
    except ServiceSetupError:
        for engine in engines.values():
            engine.close()
        raise
    return directory, engines, plugins


def reload_desk(desk: Desk, config: Any) -> list[str]:
    """SIGHUP: a new directory, rules, limits and plugins; on any error the old ones all stay (ServiceSetupError).
    The plugins are loaded again only when their part of the directory changed (a reload would otherwise drop their
    calls in flight). Returns what changed (`directory_changes`)."""
    directory = _directory(config)
    engines = rule_engines(directory, config)
    plugins_changed = directory.plugins != desk.directory.plugins
    if plugins_changed:
        try:
            plugins = plugin_host(directory, _outcome_counter(desk.host))
        except ServiceSetupError:
            for engine in engines.values():
                engine.close()
            raise
        old_plugins, desk.assist.plugins = desk.assist.plugins, plugins
        if old_plugins is not None:
            desk.spawn(old_plugins.aclose())  # its calls in flight are cancelled, each plugin closed
    changes = directory_changes(desk.directory, directory)
    for engine in desk.rules.values():
        engine.close()
    desk.rules = engines
    desk.directory = desk.router.directory = directory
    desk.know_agents()
    desk.refill()  # capacities or groups may have grown: waiting conversations go first, in queue order
    return changes


def directory_changes(old: Directory, new: Directory) -> list[str]:
    """What differs between two directories, one phrase per kind of entry and change ("groups added: cards"); a
    tenant whose rule file changed counts as changed. For the log line of a reload."""
    out = []
    for kind in ("tenants", "groups", "agents", "supervisors"):
        before, after = getattr(old, kind), getattr(new, kind)
        out += _named_changes(kind, before, after)
    before_plugins = {str(p.get("name", "")): p for p in old.plugins}
    after_plugins = {str(p.get("name", "")): p for p in new.plugins}
    out += _named_changes("plugins", before_plugins, after_plugins)
    if not out and old.plugins != new.plugins:
        out.append("plugins reordered")
    return out


def _named_changes(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    found = {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(name for name in set(before) & set(after) if before[name] != after[name]),
    }
    return [f"{kind} {how}: {', '.join(names)}" for how, names in found.items() if names]


def _outcome_counter(host: ServiceHost) -> Callable[[str, Any, str], None]:
    """What the plugin host reports each call's outcome to: a counter per outcome, a log line per failure."""

    def outcome(plugin: str, mode: Any, result: str) -> None:
        host.count(f"plugin_{result}")
        if result in ("timeout", "error"):
            host.event("service.plugin_failed", plugin=plugin, mode=str(mode), outcome=result)

    return outcome


def build_desk(host: ServiceHost, profiles: Profiles, config: Any) -> Desk:
    """The desk with its directory, rules and plugins (the sentiment worker starts in `start_desk`)."""
    directory, engines, plugins = load_service(config, _outcome_counter(host))
    desk = Desk(host, profiles, directory)
    desk.rules = engines
    desk.assist.plugins = plugins
    return desk


async def start_desk(desk: Desk, config: Any) -> None:
    """Give the desk a sentiment scorer (when enabled). Its worker process (SnowNLP's model, about 450 MB) starts on
    first use, with the first visitor text of a service conversation, not with the server: a server whose tenants
    open no service conversation never pays for it. The texts scored while the model loads (~2 s) wait for it, and
    routing waits for a first message's score at most [service] sentiment_wait_ms, so the first conversation after a
    start is usually routed without its sentiment. A worker that fails to start fails those texts' scores (counted,
    logged) and is tried again with the next text."""
    if config.service.sentiment:
        from .sentiment import SentimentScorer  # noqa: PLC0415 - only when sentiment is on

        host = desk.host
        desk.assist.scorer = SentimentScorer(
            on_start_failed=lambda reason: host.event("service.sentiment_unavailable", reason=reason)
        )


async def tick_forever(desk: Desk) -> None:
    """Queue overflow checks every [service] queue_tick_ms (read each time: SIGHUP may change it)."""
    while True:
        await asyncio.sleep(desk.host.config.service.queue_tick_ms / 1000)
        try:
            desk.tick()
        except Exception as exc:  # a bug in one tick must not stop the next
            desk.host.background_error(exc)
