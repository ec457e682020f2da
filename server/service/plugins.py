"""AI plugins: the interface, the registry (entry points in group "kefu.plugins") and the host that runs them.

A plugin receives a conversation's `Context` and answers in one of three modes::

    Mode.AUTO_REPLY  -> Reply(text)        the server posts it to the visitor
    Mode.SUGGEST     -> Draft(text, note)  only the agent sees it; only text the agent approves reaches the visitor
    Mode.CLASSIFY    -> Tags(tags)         the server adds them to the conversation

or None when it has nothing to say. A plugin package registers a factory (a callable taking the plugin's options,
usually the plugin class itself) under the entry-point group "kefu.plugins"; the configuration names instances::

    PluginConfig(name="faq", kind="keyword", modes=frozenset({Mode.AUTO_REPLY}), options={"faq": [...]})

Errors, split by fault::

    Exception
     +-- PluginError       load time: unknown kind, bad options, a mode the plugin does not support (the config's
     |                     fault); the message names the instance and kind
     +-- PluginCallError   call time: the plugin's backend failed or its result was invalid; the message holds no
                           conversation content, so it may be logged

Theory of operation: the server calls `PluginHost.run` after a visitor message has been committed and delivered,
so a plugin can never delay delivery; what the host guarantees is that `run` itself is bounded and never raises.
Each configured plugin's `handle` runs in its own task; `run` waits until every task is done or past its deadline
(the instance's `timeout_s`), whichever is first for each. An overdue task is cancelled and *not* awaited: a plugin
that swallows the cancellation cannot hold `run` past the longest timeout. Such a task stays counted against the
instance's `max_in_flight` until it really ends, so a plugin stuck that way sheds further calls ("busy") instead of
piling up tasks. A result is then checked against its mode (type, non-empty, bounded sizes, tags normalised) and
every call ends in exactly one outcome reported to `on_outcome`: "ok", "empty" (None or blank), "timeout",
"error" (raised, or an invalid result) or "busy". Logs name the instance, mode and outcome, and for an exception
only its type and where it was raised (plus the message of a PluginCallError): never conversation text, which
is bank data. Repeated failures of one instance are logged at most once per LOG_INTERVAL_S, with a count.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import re
import traceback
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import PurePath
from typing import Any, Final, Protocol, TypeAlias

__all__ = [
    "CLOSE_GRACE_S",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT_S",
    "ENTRY_POINT_GROUP",
    "LOG_INTERVAL_S",
    "MAX_NOTE_CHARS",
    "MAX_TAGS",
    "MAX_TAG_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TIMEOUT_S",
    "Context",
    "Draft",
    "Mode",
    "Outcome",
    "Plugin",
    "PluginCallError",
    "PluginConfig",
    "PluginError",
    "PluginFactory",
    "PluginHost",
    "Reply",
    "Result",
    "Tags",
    "Turn",
    "discover",
    "normalise_tag",
    "resolve",
    "validate_result",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "kefu.plugins"

MAX_TEXT_CHARS: Final = 4_000
"""Longest Reply or Draft text. A chat answer longer than a few phone screens is not an answer, and 4,000
characters (12 KB of UTF-8 Chinese) stays far below the server's message limit; longer output means a runaway
model, so it is refused rather than cut (a truncated answer to a bank's customer can mislead)."""
MAX_NOTE_CHARS: Final = 500
"""Longest Draft note: a line or two of explanation for the agent, not a second draft."""
MAX_TAGS: Final = 16
"""Most tags in one Tags result: more than a screenful of labels on a conversation is noise, not classification."""
MAX_TAG_CHARS: Final = 64
"""Longest tag: a label ("card_loss", "投诉"), not a sentence; also bounds what a tag costs in storage and metrics."""
DEFAULT_TIMEOUT_S: Final = 2.0
"""A plugin's default time to answer: a keyword match takes microseconds, a 7B model's short answer about a
second on one GPU; an auto-reply later than a couple of seconds arrives after the visitor has typed again."""
MAX_TIMEOUT_S: Final = 60.0
"""Longest per-call timeout: a suggestion arriving a minute after the message is of no use to the agent, and a
longer bound would let a hung endpoint hold a task per message for that long."""
DEFAULT_MAX_IN_FLIGHT: Final = 64
"""Calls of one instance running at once before further calls are shed ("busy"). A private LLM server works on
a handful of requests at a time; past a few dozen, queued requests would only reach their timeouts, so shedding
costs nothing, and it keeps tasks of a plugin that ignores cancellation from piling up."""
CLOSE_GRACE_S: Final = 2.0
"""How long `aclose` waits for cancelled calls to unwind, and for each plugin's own aclose."""
LOG_INTERVAL_S: Final = 10.0
"""At most one failure line per instance per interval: when the LLM server reboots at 1,000 messages a second the
metrics carry the counts, the log needs only to say that it is happening."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
"""Instance names appear in metrics labels and logs: short and plain."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""C0 controls other than tab, newline and carriage return: never part of a chat message."""


class Mode(enum.StrEnum):
    """What the server asks of a plugin."""

    AUTO_REPLY = "auto_reply"
    SUGGEST = "suggest"
    CLASSIFY = "classify"


class Outcome(enum.StrEnum):
    """How one plugin call ended, as reported to `on_outcome` (a str: the server may use it as a metrics label)."""

    OK = "ok"
    EMPTY = "empty"
    TIMEOUT = "timeout"
    ERROR = "error"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation."""

    role: str  # "visitor" | "agent" | "system"
    sender: str
    text: str
    seq: int


@dataclass(frozen=True, slots=True)
class Context:
    """What a plugin sees of a conversation. `history` is oldest first and bounded by the caller; it may or may
    not end with `latest` (plugins compare `seq`)."""

    tenant: str
    conversation_id: int
    group: str | None
    attributes: Mapping[str, str]
    history: tuple[Turn, ...]
    latest: Turn
    sentiment: float | None  # 0..1, 0 negative


@dataclass(frozen=True, slots=True)
class Reply:
    """AUTO_REPLY result: text for the visitor."""

    text: str


@dataclass(frozen=True, slots=True)
class Draft:
    """SUGGEST result: a draft only the agent sees, with an optional note for the agent."""

    text: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Tags:
    """CLASSIFY result."""

    tags: tuple[str, ...]


Result: TypeAlias = Reply | Draft | Tags

_RESULT_TYPES: Final[Mapping[Mode, type[Reply | Draft | Tags]]] = {
    Mode.AUTO_REPLY: Reply,
    Mode.SUGGEST: Draft,
    Mode.CLASSIFY: Tags,
}


class Plugin(Protocol):
    """What a factory returns. Construction should validate options and acquire nothing that needs `aclose`
    (open connections lazily): `PluginHost.load` drops already-built plugins when a later one fails."""

    name: str
    modes: frozenset[Mode]

    async def handle(self, mode: Mode, context: Context) -> Result | None:
        """Answer `context` in `mode`, or None. May raise (PluginCallError for a message safe to log)."""
        ...

    async def aclose(self) -> None:
        """Release what the plugin holds (HTTP connections)."""
        ...


PluginFactory: TypeAlias = Callable[[Mapping[str, Any]], Plugin]
"""What an entry point names: called with the instance's options, returns a Plugin or raises PluginError."""


class PluginError(Exception):
    """A plugin cannot be loaded as configured; the message says which instance, which kind and why."""


class PluginCallError(Exception):
    """A plugin call failed (endpoint down, HTTP error, malformed answer, invalid result). The message never holds
    conversation content, so the host logs it."""


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """One configured plugin instance."""

    name: str  # instance name (unique)
    kind: str  # entry point name in group "kefu.plugins"
    modes: frozenset[Mode]
    timeout_s: float = DEFAULT_TIMEOUT_S
    options: Mapping[str, Any] = field(default_factory=dict)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> PluginConfig:
        """A config from a TOML table ({name, kind, modes = ["suggest"], timeout_s, max_in_flight, options})."""
        known = {"name", "kind", "modes", "timeout_s", "max_in_flight", "options"}
        if unknown := sorted(set(raw) - known):
            raise PluginError(f"plugin {raw.get('name')!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        name, kind, modes, options = raw.get("name"), raw.get("kind"), raw.get("modes"), raw.get("options", {})
        if not isinstance(name, str) or not isinstance(kind, str):
            raise PluginError(f"plugin {name!r}: name and kind must be strings")
        if not isinstance(modes, list | tuple | set | frozenset) or not all(isinstance(m, str) for m in modes):
            raise PluginError(f"plugin {name!r}: modes must be a list of {[m.value for m in Mode]}")
        if not isinstance(options, Mapping):
            raise PluginError(f"plugin {name!r}: options must be a table")
        try:
            mode_set = frozenset(Mode(m) for m in modes)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r}: {exc}; modes are {[m.value for m in Mode]}") from None
        timeout_s = raw.get("timeout_s", DEFAULT_TIMEOUT_S)
        config = cls(name, kind, mode_set, timeout_s, options, raw.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT))
        _check_config(config)
        return config


def normalise_tag(tag: str) -> str:
    """The form tags are compared and stored in: NFKC (full-width letters as ASCII), stripped, lower-case."""
    return unicodedata.normalize("NFKC", tag).strip().lower()


def validate_result(mode: Mode, result: object) -> Result | None:
    """`result` checked and normalised for `mode`: None when empty; PluginCallError when invalid."""
    if result is None:
        return None
    expected = _RESULT_TYPES[mode]
    if type(result) is not expected:
        raise PluginCallError(f"{mode} expects {expected.__name__}, got {type(result).__name__}")
    match result:
        case Reply(text=text):
            checked = _checked_text(text, MAX_TEXT_CHARS, "text")
            return Reply(checked) if checked else None
        case Draft(text=text, note=note):
            checked = _checked_text(text, MAX_TEXT_CHARS, "text")
            return Draft(checked, _checked_text(note, MAX_NOTE_CHARS, "note")) if checked else None
        case Tags(tags=tags):
            normalised = _checked_tags(tags)
            return Tags(normalised) if normalised else None
    raise AssertionError(type(result))  # pragma: no cover - the type check above covers every Result


def _checked_text(text: object, limit: int, what: str) -> str:
    if not isinstance(text, str):
        raise PluginCallError(f"{what} is {type(text).__name__}, not str")
    text = text.strip()
    if len(text) > limit:
        raise PluginCallError(f"{what} has {len(text)} characters, more than {limit}")
    if _CONTROL.search(text):
        raise PluginCallError(f"{what} holds control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PluginCallError(f"{what} is not valid Unicode (lone surrogates)") from None
    return text


def _checked_tags(tags: object) -> tuple[str, ...]:
    if not isinstance(tags, tuple) or not all(isinstance(t, str) for t in tags):
        raise PluginCallError("tags must be a tuple of str")
    seen: dict[str, None] = {}
    for tag in tags:
        normalised = normalise_tag(tag)
        if not normalised:
            continue
        if len(normalised) > MAX_TAG_CHARS or not normalised.isprintable():
            raise PluginCallError(f"a tag of {len(normalised)} characters is too long or not printable")
        seen[normalised] = None
    if len(seen) > MAX_TAGS:
        raise PluginCallError(f"{len(seen)} tags, more than {MAX_TAGS}")
    return tuple(seen)


# --- the registry -----------------------------------------------------------------------------------------


def discover() -> dict[str, tuple[str, ...]]:
    """The plugin kinds installed: kind -> the distinct "module:attr" values registered under it (usually one)."""
    found: dict[str, dict[str, None]] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, {})[entry_point.value] = None
    return {kind: tuple(values) for kind, values in sorted(found.items())}


def resolve(kind: str) -> PluginFactory:
    """The factory registered as `kind` in group "kefu.plugins" (imported now); PluginError if none, several
    different ones, or it fails to import."""
    entry_points = list(metadata.entry_points(group=ENTRY_POINT_GROUP, name=kind))
    values = sorted({entry_point.value for entry_point in entry_points})
    if not values:
        raise PluginError(f"unknown plugin kind {kind!r}; installed kinds: {sorted(discover())}")
    if len(values) > 1:
        raise PluginError(f"plugin kind {kind!r} is registered by several packages: {values}")
    try:
        factory = entry_points[0].load()
    except Exception as exc:
        raise PluginError(f"plugin kind {kind!r} ({values[0]}) failed to import: {type(exc).__name__}: {exc}") from exc
    if not callable(factory):
        raise PluginError(f"plugin kind {kind!r} ({values[0]}) is not callable")
    return factory  # type: ignore[no-any-return]


def _check_config(config: PluginConfig) -> None:
    prefix = f"plugin {config.name!r}"
    if not isinstance(config.name, str) or not _NAME.fullmatch(config.name):
        raise PluginError(f"{prefix}: name must be 1-64 letters, digits, '_', '.' or '-'")
    if not isinstance(config.kind, str) or not config.kind:
        raise PluginError(f"{prefix}: kind must name an entry point in group {ENTRY_POINT_GROUP!r}")
    if not config.modes or not all(isinstance(m, Mode) for m in config.modes):
        raise PluginError(f"{prefix}: modes must be a non-empty set of {[m.value for m in Mode]}")
    timeout = config.timeout_s
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise PluginError(f"{prefix}: timeout_s must be a number of seconds in (0, {MAX_TIMEOUT_S}]")
    if isinstance(config.max_in_flight, bool) or not isinstance(config.max_in_flight, int) or config.max_in_flight < 1:
        raise PluginError(f"{prefix}: max_in_flight must be a positive integer")
    if not isinstance(config.options, Mapping):
        raise PluginError(f"{prefix}: options must be a mapping")


def _check_plugin(config: PluginConfig, plugin: object) -> None:
    prefix = f"plugin {config.name!r} (kind {config.kind!r})"
    for method in ("handle", "aclose"):
        if not callable(getattr(plugin, method, None)):
            raise PluginError(f"{prefix}: the factory returned {type(plugin).__name__}, which has no {method}()")
    served = getattr(plugin, "modes", None)
    if not isinstance(served, set | frozenset) or not all(m in set(Mode) for m in served):
        raise PluginError(f"{prefix}: the plugin's modes must be a set of {[m.value for m in Mode]}")
    if missing := sorted(config.modes - served):
        supported = ", ".join(sorted(Mode(m).value for m in served)) or "none"
        raise PluginError(
            f"{prefix} does not support mode(s) {', '.join(missing)} with these options (it supports: {supported})"
        )


# --- the host ---------------------------------------------------------------------------------------------


class _Instance:
    """A loaded plugin with its config, its calls in flight and its log throttle."""

    __slots__ = ("config", "in_flight", "next_log_at", "plugin", "suppressed")

    def __init__(self, config: PluginConfig, plugin: Plugin) -> None:
        self.config = config
        self.plugin = plugin
        self.in_flight: set[asyncio.Task[object]] = set()
        self.next_log_at = -math.inf
        self.suppressed = 0

    def start(self, mode: Mode, context: Context) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            self._call(mode, context), name=f"kefu-plugin-{self.config.name}-{mode}"
        )
        self.in_flight.add(task)
        task.add_done_callback(self._finished)
        return task

    async def _call(self, mode: Mode, context: Context) -> object:
        # handle() called inside the task: a plugin whose handle raises before awaiting, or is not a coroutine
        # function at all, fails this task rather than run().
        return await self.plugin.handle(mode, context)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self.in_flight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure of an abandoned call is not "never retrieved"


class PluginHost:
    """Loads the configured plugins and runs them per mode, concurrently, each under its own timeout."""

    def __init__(
        self,
        configs: Sequence[PluginConfig],
        *,
        on_outcome: Callable[[str, Mode, str], None] | None = None,
        factories: Mapping[str, PluginFactory] | None = None,
    ) -> None:
        """`on_outcome(instance, mode, outcome)` is called once per call (outcome: an `Outcome`). `factories`
        resolves kinds before the entry points do (tests, embedding); deployments register entry points."""
        self._configs = tuple(configs)
        self._on_outcome = on_outcome
        self._factories = dict(factories or {})
        self._instances: tuple[_Instance, ...] = ()
        self._loaded = False
        self._closed = False

    def load(self) -> None:
        """Resolve the kinds, build the plugins and check their modes; PluginError on the first problem."""
        if self._loaded:
            raise PluginError("plugins are already loaded")
        names: set[str] = set()
        for config in self._configs:
            _check_config(config)
            if config.name in names:
                raise PluginError(f"plugin {config.name!r} is configured twice")
            names.add(config.name)
        factories = {kind: self._factories.get(kind) or resolve(kind) for kind in {c.kind for c in self._configs}}
        self._instances = tuple(_Instance(c, self._build(c, factories[c.kind])) for c in self._configs)
        self._loaded = True

    @staticmethod
    def _build(config: PluginConfig, factory: PluginFactory) -> Plugin:
        prefix = f"plugin {config.name!r} (kind {config.kind!r})"
        try:
            plugin = factory(config.options)
        except PluginError as exc:
            raise PluginError(f"{prefix}: {exc}") from exc
        except Exception as exc:
            raise PluginError(f"{prefix} could not be built: {type(exc).__name__}: {exc}") from exc
        _check_plugin(config, plugin)
        return plugin

    def modes(self) -> frozenset[Mode]:
        """The modes at least one loaded plugin is configured for (the server skips `run` for the others)."""
        return frozenset().union(*(i.config.modes for i in self._instances))

    def names(self, mode: Mode) -> tuple[str, ...]:
        """The instances configured for `mode`, in config order."""
        return tuple(i.config.name for i in self._instances if mode in i.config.modes)

    async def run(self, mode: Mode, context: Context) -> list[tuple[str, Result]]:
        """Every plugin configured for `mode`, concurrently, each under its timeout; (instance, result) in config
        order for those that answered. Never raises but CancelledError (and then cancels its calls)."""
        if self._closed:
            return []
        loop = asyncio.get_running_loop()
        calls: list[tuple[_Instance, asyncio.Task[object], float]] = []
        for instance in self._instances:
            if mode not in instance.config.modes:
                continue
            if len(instance.in_flight) >= instance.config.max_in_flight:
                self._report(instance, mode, Outcome.BUSY, f"{len(instance.in_flight)} calls already in flight")
                continue
            calls.append((instance, instance.start(mode, context), loop.time() + instance.config.timeout_s))
        try:
            overdue = await self._wait(loop, calls)
        except asyncio.CancelledError:
            for _, task, _ in calls:
                task.cancel()
            raise
        results: list[tuple[str, Result]] = []
        for instance, task, _ in calls:
            result = self._collect(instance, mode, task, task in overdue)
            if result is not None:
                results.append((instance.config.name, result))
        return results

    @staticmethod
    async def _wait(
        loop: asyncio.AbstractEventLoop, calls: list[tuple[_Instance, asyncio.Task[object], float]]
    ) -> set[asyncio.Task[object]]:
        """Until each call is done or past its deadline; cancels (without awaiting) and returns the overdue."""
        deadlines: dict[asyncio.Task[object], float] = {task: deadline for _, task, deadline in calls}
        pending = set(deadlines)
        overdue: set[asyncio.Task[object]] = set()
        while pending:
            now = loop.time()
            for task in [t for t in pending if deadlines[t] <= now]:
                pending.discard(task)
                if not task.done():
                    task.cancel()
                    overdue.add(task)
            if pending:
                _, pending = await asyncio.wait(pending, timeout=min(deadlines[t] for t in pending) - now)
        return overdue

    def _collect(self, instance: _Instance, mode: Mode, task: asyncio.Task[object], overdue: bool) -> Result | None:
        if overdue and not (task.done() and not task.cancelled()):
            self._report(instance, mode, Outcome.TIMEOUT, f"no answer within {instance.config.timeout_s:g} s")
            return None
        if task.cancelled():
            self._report(instance, mode, Outcome.ERROR, "the call was cancelled by the plugin itself")
            return None
        try:
            result = validate_result(mode, task.result())
        except Exception as exc:
            self._report(instance, mode, Outcome.ERROR, _describe(exc))
            return None
        self._report(instance, mode, Outcome.OK if result is not None else Outcome.EMPTY)
        return result

    def _report(self, instance: _Instance, mode: Mode, outcome: Outcome, why: str = "") -> None:
        name = instance.config.name
        if why:
            self._log_failure(instance, mode, outcome, why)
        if self._on_outcome is not None:
            try:
                self._on_outcome(name, mode, outcome)
            except Exception:
                log.exception("plugin outcome callback failed for %s %s %s", name, mode, outcome)

    @staticmethod
    def _log_failure(instance: _Instance, mode: Mode, outcome: Outcome, why: str) -> None:
        now = asyncio.get_running_loop().time()
        if now < instance.next_log_at:
            instance.suppressed += 1
            return
        more = f" ({instance.suppressed} more failures since the last line)" if instance.suppressed else ""
        log.warning("plugin %s %s: %s: %s%s", instance.config.name, mode, outcome, why, more)
        instance.next_log_at, instance.suppressed = now + LOG_INTERVAL_S, 0

    async def aclose(self) -> None:
        """Cancel calls still in flight and close every plugin (each bounded by CLOSE_GRACE_S); never raises."""
        if self._closed:
            return
        self._closed = True
        stragglers = {task for instance in self._instances for task in instance.in_flight}
        for task in stragglers:
            task.cancel()
        if stragglers:
            await asyncio.wait(stragglers, timeout=CLOSE_GRACE_S)
        for instance in self._instances:
            try:
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await instance.plugin.aclose()
            except Exception as exc:
                log.warning("plugin %s: aclose failed: %s", instance.config.name, _describe(exc))


def _describe(exc: BaseException) -> str:
    """What a log line may say about a plugin's exception: its type and where it was raised, and its message only
    for a PluginCallError (whose messages promise to hold no conversation content)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {PurePath(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    if isinstance(exc, PluginCallError):
        return f"{exc}{where}"
    return f"{type(exc).__name__}{where}"
