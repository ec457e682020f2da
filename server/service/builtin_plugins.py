"""The built-in AI plugins: keywords/FAQ (pure, no I/O) and an OpenAI-compatible chat-completions client.

Both are registered in pyproject.toml under the entry-point group "kefu.plugins" as "keyword" and "openai"; each
class is its own factory (`KeywordFaqPlugin(options)`), validating its options strictly at construction so that
a misspelt option stops the server at start rather than silently disabling a bank's FAQ.

OpenAIChatPlugin keeps conversation data inside the private network: at load it refuses an endpoint whose host is
not (or does not resolve only to) a loopback, RFC 1918, unique-local or link-local address unless `allow_public`
is set; its HTTP client ignores proxy variables and never follows redirects; its API key comes from an
environment variable named in the options, never from the config itself; and it logs sizes and status codes, never
message text. The resolution check runs once, at load: later DNS answers are trusted, as the private network's
DNS is the bank's own.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx

from .plugins import (
    MAX_NOTE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TEXT_CHARS,
    MAX_TIMEOUT_S,
    Context,
    Draft,
    Mode,
    PluginCallError,
    PluginError,
    Reply,
    Result,
    Tags,
    normalise_tag,
)

if TYPE_CHECKING:
    from .plugins import PluginFactory

__all__ = [
    "MAX_FAQ_ENTRIES",
    "MAX_KEYWORDS",
    "MAX_KEYWORD_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_RESPONSE_BYTES",
    "PRIVATE_NETWORKS",
    "KeywordFaqPlugin",
    "OpenAIChatPlugin",
    "check_endpoint",
]

log = logging.getLogger(__name__)

MAX_FAQ_ENTRIES: Final = 2_000
"""FAQ entries (and, separately, tags) per keyword plugin. Matching costs grow with the message, not the list
(`_KeywordIndex`: under 0.1 ms for 2,000 entries on a 200-character message), so the bound is about the config:
a FAQ larger than this belongs in a search engine, not a keyword list."""
MAX_KEYWORDS: Final = 64
"""Keywords per FAQ entry or tag: synonyms and common misspellings, not a dictionary."""
MAX_KEYWORD_CHARS: Final = 64
"""Longest keyword: a word or phrase; a longer one would never occur in a chat message."""
MAX_PROMPT_CHARS: Final = 8_000
"""Longest configured system or classification prompt: instructions, not a knowledge base."""
MAX_RESPONSE_BYTES: Final = 256 * 1024
"""Largest chat-completions response read. A 4,000-character answer JSON-escaped as \\uXXXX is 24 KB; ten times
that leaves room for usage and logprob fields while bounding what a broken endpoint can make us buffer."""
DEFAULT_MAX_PROMPT_CHARS: Final = 16_000
"""Conversation characters sent by default: about 8,000-16,000 tokens of Chinese, inside a 32k-context model's
window with room for the answer; older turns are dropped first."""
MAX_MAX_TOKENS: Final = 8_192
"""Upper bound of the max_tokens option: MAX_TEXT_CHARS of output is well under 8k tokens in any language."""

PRIVATE_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",  # loopback
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "169.254.0.0/16",  # link-local
        "::1/128",  # loopback
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local
    )
)
"""Where an endpoint may be without `allow_public`: the issue's list, spelled out rather than
`ipaddress.is_private`, which also admits documentation and reserved ranges."""

DEFAULT_SYSTEM_PROMPT: Final = (
    "You are a customer-service assistant for a bank. Answer the customer's latest message briefly, politely and "
    "in the customer's language. Never invent account details, rates or fees. If you are not sure of the answer, "
    "reply with exactly NO_ANSWER."
)
DEFAULT_CLASSIFY_PROMPT: Final = (
    "Classify this customer-service conversation. Answer only with a comma-separated list of short lower-case "
    "tags, or NONE if no tag applies."
)
DEFAULT_DECLINE_MARKER: Final = "NO_ANSWER"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_THINKING = re.compile(r"\A\s*<think>.*?</think>", re.DOTALL)
"""Reasoning models (Qwen3, DeepSeek-R1) may prefix their answer with a <think> block: never shown to anyone."""
_TAG_SEPARATORS = re.compile(r"[,，、;；\n]")
_TAG_DECORATION = "\"'`*-•[]()「」“”‘’ \t"


# --- options ----------------------------------------------------------------------------------------------


class _Options:
    """Reads a plugin's options, each with its type and bounds; `done` refuses keys nobody read."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        if not isinstance(options, Mapping):
            raise PluginError(f"options must be a table, not {type(options).__name__}")
        self._options = options
        self._read: set[str] = set()

    def value(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        return self._options.get(key, default)

    def string(self, key: str, default: str | None = None, *, max_chars: int = 1_000) -> str:
        value = self.value(key, default)
        if not isinstance(value, str) or not value.strip():
            raise PluginError(f"option {key!r} must be a non-empty string")
        if len(value) > max_chars:
            raise PluginError(f"option {key!r} is longer than {max_chars} characters")
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.value(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise PluginError(f"option {key!r} must be an integer in [{lo}, {hi}]")
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.value(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise PluginError(f"option {key!r} must be a number in [{lo}, {hi}]")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.value(key, default)
        if not isinstance(value, bool):
            raise PluginError(f"option {key!r} must be true or false")
        return value

    def done(self) -> None:
        unknown = sorted(set(self._options) - self._read)
        if unknown:
            hints = [_hint(key, self._read) for key in unknown]
            raise PluginError(f"unknown option(s) {', '.join(hints)}; known: {', '.join(sorted(self._read))}")


def _hint(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, known, 1)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)


def _keywords(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise PluginError(f"{where}: keywords must be a non-empty list of strings")
    if len(value) > MAX_KEYWORDS:
        raise PluginError(f"{where}: more than {MAX_KEYWORDS} keywords")
    folded = []
    for keyword in value:
        if not isinstance(keyword, str) or not (key := _fold(keyword)) or len(key) > MAX_KEYWORD_CHARS:
            raise PluginError(f"{where}: each keyword must be a string of 1-{MAX_KEYWORD_CHARS} characters")
        folded.append(key)
    return tuple(dict.fromkeys(folded))


def _fold(text: str) -> str:
    """The form keywords and messages are compared in: NFKC (full-width ＡＴＭ as ATM), case-folded, runs of
    whitespace as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --- keywords and FAQ -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FaqEntry:
    keywords: tuple[str, ...]
    answer: str


class _KeywordIndex:
    """Which of many keyword groups (FAQ entries, tags) occur in a text, in time linear in the text.

    Keywords are filed under their first character: a text costs one dict lookup per character plus a
    `startswith` per keyword beginning with that character, instead of a substring scan per keyword (2,000
    entries of three keywords cost 1.3 ms per message scanned one by one, tens of microseconds this way)."""

    __slots__ = ("_by_first", "_groups", "_groups_of", "_require_all")

    def __init__(self, groups: Sequence[tuple[str, ...]], *, require_all: bool) -> None:
        self._groups = tuple(groups)
        self._require_all = require_all
        self._by_first: dict[str, list[str]] = {}
        self._groups_of: dict[str, list[int]] = {}
        for i, keywords in enumerate(groups):
            for keyword in keywords:
                if keyword not in self._groups_of:
                    self._by_first.setdefault(keyword[0], []).append(keyword)
                self._groups_of.setdefault(keyword, []).append(i)

    def found(self, folded: str) -> set[str]:
        """The keywords occurring in `folded` (a text passed through `_fold`)."""
        found: set[str] = set()
        for i, char in enumerate(folded):
            for keyword in self._by_first.get(char, ()):
                if keyword not in found and folded.startswith(keyword, i):
                    found.add(keyword)
        return found

    def matching(self, found: set[str]) -> Iterator[int]:
        """Indexes of the groups matched by `found`, in order: any of their keywords, or all with "match": "all"."""
        for i in sorted({i for keyword in found for i in self._groups_of[keyword]}):
            if not self._require_all or all(k in found for k in self._groups[i]):
                yield i


class KeywordFaqPlugin:
    """Keyword matching on the latest visitor message: FAQ answers (AUTO_REPLY, or SUGGEST as a draft) and tags
    (CLASSIFY). Options::

        {"faq": [{"keywords": ["挂失", "丢失"], "answer": "..."}],     # first matching entry wins
         "tags": {"card_loss": ["挂失", "丢卡"], "complaint": ["投诉"]},
         "match": "any"}                                                 # or "all": every keyword must occur

    Matching is a case-insensitive substring test after NFKC, so it works on Chinese text (no word boundaries)
    and on full-width Latin letters. The plugin serves AUTO_REPLY and SUGGEST when it has FAQ entries and CLASSIFY
    when it has tags."""

    name = "keyword"

    def __init__(self, options: Mapping[str, Any]) -> None:
        reader = _Options(options)
        match = reader.string("match", "any")
        if match not in ("any", "all"):
            raise PluginError("option 'match' must be 'any' or 'all'")
        self._faq = self._read_faq(reader.value("faq", []))
        self._tags = self._read_tags(reader.value("tags", {}))
        self._faq_index = _KeywordIndex([e.keywords for e in self._faq], require_all=match == "all")
        self._tag_index = _KeywordIndex([keywords for _, keywords in self._tags], require_all=match == "all")
        reader.done()
        if not self._faq and not self._tags:
            raise PluginError("needs at least one of the options 'faq' and 'tags'")
        serves = {Mode.AUTO_REPLY, Mode.SUGGEST} if self._faq else set()
        self.modes = frozenset(serves | ({Mode.CLASSIFY} if self._tags else set()))

    @staticmethod
    def _read_faq(value: object) -> tuple[_FaqEntry, ...]:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise PluginError("option 'faq' must be a list of {keywords, answer} tables")
        if len(value) > MAX_FAQ_ENTRIES:
            raise PluginError(f"option 'faq' has more than {MAX_FAQ_ENTRIES} entries")
        entries = []
        for i, entry in enumerate(value):
            where = f"faq[{i}]"
            if not isinstance(entry, Mapping) or set(entry) != {"keywords", "answer"}:
                raise PluginError(f"{where} must be a table with exactly the keys 'keywords' and 'answer'")
            answer = entry["answer"]
            if not isinstance(answer, str) or not answer.strip() or len(answer.strip()) > MAX_TEXT_CHARS:
                raise PluginError(f"{where}: answer must be a string of 1-{MAX_TEXT_CHARS} characters")
            entries.append(_FaqEntry(_keywords(entry["keywords"], where), answer.strip()))
        return tuple(entries)

    @staticmethod
    def _read_tags(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if not isinstance(value, Mapping):
            raise PluginError("option 'tags' must be a table of tag = [keywords]")
        if len(value) > MAX_FAQ_ENTRIES:
            raise PluginError(f"option 'tags' has more than {MAX_FAQ_ENTRIES} tags")
        tags: dict[str, tuple[str, ...]] = {}
        for tag, keywords in value.items():
            name = normalise_tag(tag) if isinstance(tag, str) else ""
            if not name or len(name) > MAX_TAG_CHARS or not name.isprintable() or name in tags:
                raise PluginError(f"tags: {tag!r} must be a distinct tag name of 1-{MAX_TAG_CHARS} characters")
            tags[name] = _keywords(keywords, f"tags.{name}")
        return tuple(tags.items())

    def answer(self, text: str) -> tuple[str, str] | None:
        """The first FAQ entry matching `text`: (answer, the first of its keywords found), or None."""
        found = self._faq_index.found(_fold(text))
        for i in self._faq_index.matching(found):
            entry = self._faq[i]
            return entry.answer, next(k for k in entry.keywords if k in found)
        return None

    def classify(self, text: str) -> tuple[str, ...]:
        """Every tag with keywords matching `text`, in option order (at most MAX_TAGS)."""
        found = self._tag_index.found(_fold(text))
        return tuple(self._tags[i][0] for i in self._tag_index.matching(found))[:MAX_TAGS]

    async def handle(self, mode: Mode, context: Context) -> Result | None:
        if context.latest.role != "visitor":
            return None
        if mode is Mode.CLASSIFY:
            tags = self.classify(context.latest.text)
            return Tags(tags) if tags else None
        found = self.answer(context.latest.text)
        if found is None:
            return None
        answer, keyword = found
        return Reply(answer) if mode is Mode.AUTO_REPLY else Draft(answer, f"FAQ match: {keyword}"[:MAX_NOTE_CHARS])

    async def aclose(self) -> None:
        pass


# --- the OpenAI-compatible endpoint -----------------------------------------------------------------------

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


def check_endpoint(endpoint: str, *, allow_public: bool = False, resolve: Resolver = socket.getaddrinfo) -> str:
    """`endpoint` ("http://10.1.2.3:8000/v1") checked and without a trailing slash; PluginError unless it is
    http(s) without credentials, query or fragment and, unless `allow_public`, its host is (or resolves only to)
    addresses in PRIVATE_NETWORKS. A host name is resolved once, now, with `resolve` (socket.getaddrinfo)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PluginError(f"endpoint {endpoint!r} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise PluginError("endpoint must not carry credentials, a query or a fragment (the key goes in api_key_env)")
    try:
        port = parts.port
    except ValueError:
        raise PluginError(f"endpoint {endpoint!r} has an invalid port") from None
    if not allow_public:
        for address in _addresses(parts.hostname, port, resolve):
            if not _is_private(address):
                raise PluginError(
                    f"endpoint host {parts.hostname!r} is {address}, outside the private network "
                    "(loopback, RFC 1918, fc00::/7, link-local); set allow_public = true only if that is intended"
                )
    return endpoint.rstrip("/")


def _addresses(host: str, port: int | None, resolve: Resolver) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise PluginError(f"endpoint host {host!r} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise PluginError(f"endpoint host {host!r} resolves to no address")
    return addresses


def _is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in PRIVATE_NETWORKS)


class OpenAIChatPlugin:
    """Chat completions from an OpenAI-compatible server inside the private network (vLLM, Ollama, TGI...).
    Options::

        endpoint       "http://10.1.2.3:8000/v1" (required); POSTs {endpoint}/chat/completions
        model          "qwen2-7b" (required)
        api_key_env    name of an environment variable holding the key, read at load (optional)
        system_prompt  instructions for AUTO_REPLY and SUGGEST; an answer starting with decline_marker
                       ("NO_ANSWER", which the default prompt asks for when unsure) is no answer
        classify_prompt, tags   instructions for CLASSIFY and, optionally, the allowed tags
        max_history    turns sent (20), max_prompt_chars (16,000): older turns are dropped first
        temperature    0.2;  max_tokens 1024;  max_connections 8;  ca_file (a CA bundle for https)
        allow_public   false: refuse an endpoint outside the private network

    Visitor turns become "user" messages, agent turns "assistant" (consecutive ones merged, as some chat
    templates demand alternation), system turns are skipped. An answer cut at max_tokens is never sent as a Reply
    (it is kept as a Draft with a note). HTTP errors, non-JSON and missing fields raise PluginCallError."""

    name = "openai"
    modes = frozenset(Mode)

    def __init__(self, options: Mapping[str, Any]) -> None:
        reader = _Options(options)
        if "api_key" in options:
            raise PluginError("never put keys in the config: name an environment variable holding it in api_key_env")
        allow_public = reader.boolean("allow_public", False)
        self._url = check_endpoint(reader.string("endpoint"), allow_public=allow_public) + "/chat/completions"
        self._model = reader.string("model")
        self._headers = {"content-type": "application/json", "user-agent": "kefu"}
        if (key_env := reader.value("api_key_env")) is not None:
            self._headers["authorization"] = f"Bearer {_read_key(key_env)}"
        self._system_prompt = reader.string("system_prompt", DEFAULT_SYSTEM_PROMPT, max_chars=MAX_PROMPT_CHARS)
        self._classify_prompt = reader.string("classify_prompt", DEFAULT_CLASSIFY_PROMPT, max_chars=MAX_PROMPT_CHARS)
        allowed = reader.value("tags")
        self._allowed_tags = _allowed_tags(allowed) if allowed is not None else None
        self._decline = reader.string("decline_marker", DEFAULT_DECLINE_MARKER, max_chars=100).strip()
        self._max_history = reader.integer("max_history", 20, 1, 200)
        self._max_prompt_chars = reader.integer("max_prompt_chars", DEFAULT_MAX_PROMPT_CHARS, 100, 1_000_000)
        self._temperature = reader.number("temperature", 0.2, 0.0, 2.0)
        self._max_tokens = reader.integer("max_tokens", 1024, 1, MAX_MAX_TOKENS)
        self._limits = httpx.Limits(max_connections=reader.integer("max_connections", 8, 1, 256))
        ca_file = reader.value("ca_file")
        self._verify: ssl.SSLContext | bool = _tls_context(ca_file) if ca_file is not None else True
        reader.done()
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    async def handle(self, mode: Mode, context: Context) -> Result | None:
        if mode is not Mode.CLASSIFY and context.latest.role != "visitor":
            return None
        prompt = self._classify_instructions() if mode is Mode.CLASSIFY else self._system_prompt
        content, finish_reason = await self._complete(self._messages(prompt, context))
        cut = finish_reason == "length"
        if mode is Mode.CLASSIFY:
            tags = self._parse_tags(content)
            return Tags(tags) if tags else None
        if not content or content.startswith(self._decline):
            return None
        if mode is Mode.SUGGEST:
            return Draft(content, "cut short at max_tokens" if cut else "")
        if cut:
            raise PluginCallError("the answer was cut short at max_tokens; not sent to the visitor")
        return Reply(content)

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _classify_instructions(self) -> str:
        if self._allowed_tags is None:
            return self._classify_prompt
        return f"{self._classify_prompt}\nAllowed tags: {', '.join(self._allowed_tags)}."

    def _messages(self, prompt: str, context: Context) -> list[dict[str, str]]:
        """The system prompt, then the newest turns that fit max_history and max_prompt_chars, oldest first."""
        turns = list(context.history)
        if not turns or turns[-1].seq != context.latest.seq:
            turns.append(context.latest)
        chosen: list[tuple[str, str]] = []
        budget = self._max_prompt_chars
        for turn in reversed([t for t in turns if t.role in _ROLES][-self._max_history :]):
            if len(turn.text) > budget and chosen:
                break
            chosen.append((_ROLES[turn.role], turn.text[:budget]))  # only the latest turn can be cut
            budget -= len(turn.text)
        messages = [{"role": "system", "content": prompt}]
        for role, text in reversed(chosen):
            if messages[-1]["role"] == role:
                messages[-1]["content"] += "\n" + text
            else:
                messages.append({"role": role, "content": text})
        return messages

    async def _complete(self, messages: list[dict[str, str]]) -> tuple[str, str | None]:
        """POST the request; (content without any <think> block, finish_reason)."""
        body = json.dumps(
            {
                "model": self._model,
                "messages": messages,
                "temperature": self._temperature,
                "max_tokens": self._max_tokens,
                "stream": False,
            },
            ensure_ascii=False,
        ).encode()
        data = await self._post(body)
        try:
            document = json.loads(data)
        except ValueError:
            raise PluginCallError(f"the endpoint's answer ({len(data)} bytes) is not JSON") from None
        try:
            choice = document["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise PluginCallError("the endpoint's answer has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise PluginCallError(f"choices[0].message.content is {type(content).__name__}, not a string")
        finish_reason = choice.get("finish_reason")
        if (thinking := _THINKING.match(content)) is not None:
            content = content[thinking.end() :]
        elif content.lstrip().startswith("<think>"):
            content = ""  # the model never got past its reasoning
        return content.strip(), finish_reason if isinstance(finish_reason, str) else None

    async def _post(self, body: bytes) -> bytes:
        client = self._http()
        try:
            async with client.stream("POST", self._url, content=body, headers=self._headers) as response:
                if response.status_code != httpx.codes.OK:
                    raise PluginCallError(f"the endpoint answered HTTP {response.status_code}")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise PluginCallError(f"the endpoint's answer is larger than {MAX_RESPONSE_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise PluginCallError(f"request to the endpoint failed: {type(exc).__name__}") from exc
        log.debug("openai plugin: %d bytes sent, HTTP 200, %d bytes received", len(body), len(data))
        return bytes(data)

    def _http(self) -> httpx.AsyncClient:
        """The instance's one client, made on first use (so a plugin dropped by a failed load holds nothing)."""
        if self._closed:
            raise PluginCallError("the plugin is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(
                trust_env=False,  # no proxy from the environment can ever see conversation data
                follow_redirects=False,  # nor can a redirect send it elsewhere
                timeout=httpx.Timeout(MAX_TIMEOUT_S),  # a backstop: the host cancels calls at their own timeout
                limits=self._limits,
                verify=self._verify,
            )
        return self._client

    def _parse_tags(self, content: str) -> tuple[str, ...]:
        """Tags from a JSON list or a comma-separated answer; unknown (when `tags` is set), blank and overlong
        entries dropped, at most MAX_TAGS."""
        items: list[object]
        try:
            parsed = json.loads(content)
            items = parsed if isinstance(parsed, list) else [content]
        except ValueError:
            items = [content]
        tags: dict[str, None] = {}
        for item in items:
            for piece in _TAG_SEPARATORS.split(str(item)):
                tag = normalise_tag(piece.strip(_TAG_DECORATION))
                if tag and tag != "none" and len(tag) <= MAX_TAG_CHARS and tag.isprintable():
                    tags[tag] = None
        allowed = self._allowed_tags
        return tuple(t for t in tags if allowed is None or t in allowed)[:MAX_TAGS]


_ROLES: Final = {"visitor": "user", "agent": "assistant"}
"""Chat roles of the turns sent; system turns ("agent joined") are left out, as many chat templates refuse a
system message after the first."""


def _read_key(variable: object) -> str:
    if not isinstance(variable, str) or not _ENV_NAME.fullmatch(variable):
        raise PluginError("option 'api_key_env' must be the name of an environment variable")
    key = os.environ.get(variable, "").strip()
    if not key:
        raise PluginError(f"environment variable {variable} (api_key_env) is not set or empty")
    return key


def _allowed_tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value or len(value) > MAX_FAQ_ENTRIES:
        raise PluginError(f"option 'tags' must be a list of 1-{MAX_FAQ_ENTRIES} tags")
    tags = [normalise_tag(tag) if isinstance(tag, str) else "" for tag in value]
    if not all(tag and len(tag) <= MAX_TAG_CHARS and tag.isprintable() for tag in tags):
        raise PluginError(f"option 'tags': each tag must be a string of 1-{MAX_TAG_CHARS} characters")
    return tuple(dict.fromkeys(tags))


def _tls_context(ca_file: object) -> ssl.SSLContext:
    if not isinstance(ca_file, str):
        raise PluginError("option 'ca_file' must be a path to a PEM CA bundle")
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PluginError(f"option 'ca_file': cannot load {ca_file!r}: {exc}") from None


if TYPE_CHECKING:  # mypy checks that both classes are factories of the Plugin protocol
    _keyword: PluginFactory = KeywordFaqPlugin
    _openai: PluginFactory = OpenAIChatPlugin
