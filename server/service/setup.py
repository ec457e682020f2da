"""Building the desk from the configuration: directory, routing rules, AI plugins and the sentiment worker."""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine.ports import Profiles, ServiceHost
from .desk import Desk
from .directory import Directory, DirectoryError, load_directory
from .plugins import PluginConfig, PluginError, PluginHost
from .rules import RuleEngine, RuleError, RuleLimits

__all__ = ["ServiceSetupError", "build_desk", "reload_desk", "rule_engines", "start_desk", "tick_forever"]


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


def reload_desk(desk: Desk, config: Any) -> None:
    """SIGHUP: a new directory, rules and limits; on any error the old ones stay (ServiceSetupError)."""
    directory = _directory(config)
    engines = rule_engines(directory, config)
    for engine in desk.rules.values():
        engine.close()
    desk.rules = engines
    desk.directory = desk.router.directory = directory
    desk.refill()  # capacities or groups may have grown: waiting conversations go first, in queue order


def build_desk(host: ServiceHost, profiles: Profiles, config: Any) -> Desk:
    """The desk with its directory, rules and plugins (the sentiment worker starts in `start_desk`)."""
    directory = _directory(config)
    desk = Desk(host, profiles, directory)
    desk.rules = rule_engines(directory, config)

    def outcome(plugin: str, mode: Any, result: str) -> None:
        host.count(f"plugin_{result}")
        if result in ("timeout", "error"):
            host.event("service.plugin_failed", plugin=plugin, mode=str(mode), outcome=result)

    desk.assist.plugins = plugin_host(directory, outcome)
    return desk


async def start_desk(desk: Desk, config: Any) -> None:
    """Start the sentiment worker (when enabled) in the background: the server listens at once, and texts scored
    before the model is loaded wait for it (routing waits at most [service] sentiment_wait_ms)."""
    if config.service.sentiment:
        from .sentiment import SentimentScorer  # noqa: PLC0415 - only when sentiment is on

        scorer = SentimentScorer()
        desk.assist.scorer = scorer
        desk.spawn(_start_scorer(desk, scorer))


async def _start_scorer(desk: Desk, scorer: Any) -> None:
    try:
        await scorer.start()
    except Exception as exc:  # scoring is retried with the next text; serving goes on
        desk.host.event("service.sentiment_unavailable", reason=str(exc))


async def tick_forever(desk: Desk) -> None:
    """Queue overflow checks every [service] queue_tick_ms (read each time: SIGHUP may change it)."""
    while True:
        await asyncio.sleep(desk.host.config.service.queue_tick_ms / 1000)
        try:
            desk.tick()
        except Exception as exc:  # a bug in one tick must not stop the next
            desk.host.background_error(exc)
