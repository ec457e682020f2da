"""AI plugins: the registry (entry points), the host (timeouts, failures, validation) and the built-in plugins,
the OpenAI-compatible one against a fake endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from kefu.server.service import builtin_plugins
from kefu.server.service.builtin_plugins import KeywordFaqPlugin, OpenAIChatPlugin, check_endpoint
from kefu.server.service.plugins import (
    MAX_TAGS,
    MAX_TEXT_CHARS,
    Context,
    Draft,
    Mode,
    Plugin,
    PluginCallError,
    PluginConfig,
    PluginError,
    PluginFactory,
    PluginHost,
    Reply,
    Result,
    Tags,
    Turn,
    discover,
    resolve,
    validate_result,
)

from .fake_openai import FakeOpenAI, delayed, echo, json_body, malformed, reply, status

FAQ_OPTIONS: dict[str, Any] = {
    "faq": [
        {"keywords": ["挂失", "丢失"], "answer": "您可以在手机银行“卡片管理”中办理挂失，或致电客服热线。"},
        {"keywords": ["ATM", "吞卡"], "answer": "ATM 吞卡请携带身份证到发卡网点领取。"},
    ],
    "tags": {"card_loss": ["挂失", "丢卡"], "Complaint": ["投诉"], "atm": ["atm"]},
    "match": "any",
}
ALL = frozenset(Mode)
Outcomes = list[tuple[str, Mode, str]]


def context(text: str, *earlier: tuple[str, str], role: str = "visitor") -> Context:
    """A conversation whose history is `earlier` (role, text) pairs then the latest turn, which ends history."""
    turns = [Turn(r, f"{r}-1", t, seq) for seq, (r, t) in enumerate(earlier, 1)]
    latest = Turn(role, f"{role}-1", text, len(turns) + 1)
    return Context("bank", 42, "cards", {"vip": "gold"}, (*turns, latest), latest, 0.3)


def make_host(
    *configs: PluginConfig, factories: Mapping[str, PluginFactory] | None = None
) -> tuple[PluginHost, Outcomes]:
    outcomes: Outcomes = []
    host = PluginHost(configs, on_outcome=lambda *o: outcomes.append(o), factories=factories)
    host.load()
    return host, outcomes


def openai(fake: FakeOpenAI, name: str = "llm", modes: frozenset[Mode] = ALL, **options: Any) -> PluginConfig:
    return PluginConfig(name, "openai", modes, timeout_s=options.pop("timeout_s", 5.0),
                        options={"endpoint": fake.url, "model": "qwen2-7b", **options})  # fmt: skip


def faq(name: str = "faq", modes: frozenset[Mode] = ALL, **overrides: Any) -> PluginConfig:
    return PluginConfig(name, "keyword", modes, options={**FAQ_OPTIONS, **overrides})


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply("fake reply")) as endpoint:
        yield endpoint


# --- fake plugins for the host ----------------------------------------------------------------------------


class Fixed:
    """Answers `result` (whatever it is) in every mode."""

    name = "fixed"
    modes = ALL

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.result = options.get("result")
        self.closed = False

    async def handle(self, mode: Mode, context: Context) -> Result | None:
        return self.result

    async def aclose(self) -> None:
        self.closed = True


class Raising(Fixed):
    async def handle(self, mode: Mode, context: Context) -> Result | None:
        raise ValueError(f"bad input: {context.latest.text}")


class Stubborn(Fixed):
    """Ignores cancellation until `release` is set: a badly written plugin the host must not wait for."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.gate: asyncio.Event = options["gate"]

    async def handle(self, mode: Mode, context: Context) -> Result | None:
        while not self.gate.is_set():
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                continue
        return Reply("too late")


FACTORIES: dict[str, PluginFactory] = {"fixed": Fixed, "raising": Raising, "stubborn": Stubborn}


# --- the registry and loading -----------------------------------------------------------------------------


def test_registry_finds_both_builtins_through_entry_points() -> None:
    kinds = discover()
    assert kinds["keyword"] == ("kefu.server.service.builtin_plugins:KeywordFaqPlugin",)
    assert kinds["openai"] == ("kefu.server.service.builtin_plugins:OpenAIChatPlugin",)
    assert resolve("keyword") is KeywordFaqPlugin
    assert resolve("openai") is OpenAIChatPlugin


def write_distribution(root: Path, dist: str, entry_points: str, module: str = "", source: str = "") -> None:
    """An unpacked distribution on a sys.path entry: what `pip install` would leave, without installing."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[kefu.plugins]\n{entry_points}\n")
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(source))


THIRD_PARTY = """
    from kefu.server.service.plugins import Mode, Tags

    class ShoutPlugin:
        name = "shout"
        modes = frozenset({Mode.CLASSIFY})

        def __init__(self, options):
            self.tag = options.get("tag", "shouting")

        async def handle(self, mode, context):
            return Tags((self.tag,)) if context.latest.text.isupper() else None

        async def aclose(self):
            pass
"""


@pytest.mark.asyncio
async def test_a_third_party_plugin_registered_by_entry_point_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path, "kefu_shout", "shout = kefu_shout_plugin:ShoutPlugin", "kefu_shout_plugin", THIRD_PARTY
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "shout" in discover()
    host, outcomes = make_host(PluginConfig("shout", "shout", frozenset({Mode.CLASSIFY}), options={"tag": "Loud"}))
    assert await host.run(Mode.CLASSIFY, context("HELLO")) == [("shout", Tags(("loud",)))]
    assert await host.run(Mode.CLASSIFY, context("hello")) == []
    assert outcomes == [("shout", Mode.CLASSIFY, "ok"), ("shout", Mode.CLASSIFY, "empty")]
    await host.aclose()


def test_a_kind_registered_twice_differently_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "kefu_impostor", "keyword = kefu_impostor:Impostor")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="registered by several packages"):
        make_host(faq())


def test_a_kind_that_fails_to_import_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "kefu_broken", "broken = kefu_no_such_module:Plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"'broken'.*failed to import: ModuleNotFoundError"):
        make_host(PluginConfig("b", "broken", ALL))


def test_unknown_kind_names_the_installed_kinds() -> None:
    with pytest.raises(PluginError, match=r"unknown plugin kind 'faq'; installed kinds: \[.*'keyword'.*'openai'"):
        make_host(PluginConfig("x", "faq", ALL))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fqa": []}, "unknown option.*'fqa' \\(did you mean 'faq'\\?\\)"),
        ({}, "needs at least one of the options 'faq' and 'tags'"),
        ({"faq": [{"keywords": ["挂失"]}]}, "faq\\[0\\] must be a table with exactly the keys"),
        ({"faq": [{"keywords": "挂失", "answer": "a"}]}, "faq\\[0\\]: keywords must be a non-empty list"),
        ({"faq": [{"keywords": [], "answer": "a"}]}, "faq\\[0\\]: keywords must be a non-empty list"),
        ({"faq": [{"keywords": ["  "], "answer": "a"}]}, "faq\\[0\\]: each keyword must be a string"),
        ({"faq": [{"keywords": ["a"], "answer": ""}]}, "faq\\[0\\]: answer must be a string"),
        ({"faq": [{"keywords": ["a"], "answer": "x" * (MAX_TEXT_CHARS + 1)}]}, "faq\\[0\\]: answer must be a string"),
        ({"faq": "挂失"}, "option 'faq' must be a list"),
        ({"tags": ["card_loss"]}, "option 'tags' must be a table"),
        ({"tags": {"a": ["x"], "A": ["y"]}}, "tags: .A. must be a distinct tag name"),
        ({"tags": {"a": ["x"]}, "match": "some"}, "option 'match' must be 'any' or 'all'"),
    ],
)
def test_bad_keyword_options_are_refused_at_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=f"plugin 'kw' \\(kind 'keyword'\\): {message}"):
        make_host(PluginConfig("kw", "keyword", frozenset({Mode.CLASSIFY}), options=options))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "m"}, "option 'endpoint' must be a non-empty string"),
        ({"endpoint": "http://127.0.0.1:1/v1"}, "option 'model' must be a non-empty string"),
        ({"endpoint": "ftp://127.0.0.1/v1", "model": "m"}, "must be an http:// or https:// URL"),
        ({"endpoint": "http://u:p@127.0.0.1/v1", "model": "m"}, "must not carry credentials"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "api_key": "sk-1"}, "never put keys in the config"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "api_key_env": "NO_SUCH_VAR_KEFU"}, "NO_SUCH_VAR_KEFU"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "api_key_env": "not a name"}, "name of an environment"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "temperature": 3}, "'temperature' must be a number"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "max_history": True}, "'max_history' must be an integer"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "allow_public": "yes"}, "'allow_public' must be true"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "ca_file": "/nonexistent/ca.pem"}, "cannot load"),
        ({"endpoint": "http://127.0.0.1/v1", "model": "m", "modle": "x"}, "did you mean 'model'"),
    ],
)
def test_bad_openai_options_are_refused_at_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError, match=f"plugin 'llm' \\(kind 'openai'\\): .*{message}"):
        make_host(PluginConfig("llm", "openai", ALL, options=options))


def test_a_mode_the_plugin_does_not_serve_is_refused_at_load() -> None:
    config = PluginConfig("kw", "keyword", frozenset({Mode.CLASSIFY}), options={"faq": FAQ_OPTIONS["faq"]})
    with pytest.raises(PluginError, match=r"does not support mode.*classify.*it supports: auto_reply, suggest"):
        make_host(config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PluginConfig("", "keyword", ALL), "name must be"),
        (PluginConfig("a b", "keyword", ALL), "name must be"),
        (PluginConfig("kw", "keyword", frozenset()), "modes must be a non-empty set"),
        (PluginConfig("kw", "keyword", ALL, timeout_s=0), "timeout_s must be"),
        (PluginConfig("kw", "keyword", ALL, timeout_s=61), "timeout_s must be"),
        (PluginConfig("kw", "keyword", ALL, max_in_flight=0), "max_in_flight must be"),
    ],
)
def test_bad_configs_are_refused_at_load(config: PluginConfig, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        make_host(config)


def test_instance_names_are_unique() -> None:
    with pytest.raises(PluginError, match="'faq' is configured twice"):
        make_host(faq(), faq())


def test_a_factory_that_returns_no_plugin_is_refused() -> None:
    def not_a_plugin(options: Mapping[str, Any]) -> Any:
        return object()

    with pytest.raises(PluginError, match="has no handle"):
        make_host(PluginConfig("x", "odd", ALL), factories={"odd": not_a_plugin})


def test_config_from_a_toml_table() -> None:
    raw = {"name": "faq", "kind": "keyword", "modes": ["auto_reply", "classify"], "timeout_s": 1, "options": {}}
    config = PluginConfig.from_mapping(raw)
    assert config.modes == {Mode.AUTO_REPLY, Mode.CLASSIFY} and config.timeout_s == 1
    with pytest.raises(PluginError, match="'autoreply' is not a valid Mode"):
        PluginConfig.from_mapping({**raw, "modes": ["autoreply"]})
    with pytest.raises(PluginError, match=r"unknown key\(s\) \['timeout'\]"):
        PluginConfig.from_mapping({**raw, "timeout": 1})


def test_modes_are_what_the_loaded_instances_are_configured_for() -> None:
    host, _ = make_host(faq("a", frozenset({Mode.SUGGEST})), faq("b", frozenset({Mode.CLASSIFY})))
    assert host.modes() == {Mode.SUGGEST, Mode.CLASSIFY}
    assert host.names(Mode.CLASSIFY) == ("b",)
    assert PluginHost([]).modes() == frozenset()


# --- the keyword / FAQ plugin -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_keyword_faq_answers_chinese_text_in_each_mode() -> None:
    host, outcomes = make_host(faq())
    message = context("你好，我的银行卡丢失了，怎么挂失？我要投诉！")
    answer = FAQ_OPTIONS["faq"][0]["answer"]
    assert await host.run(Mode.AUTO_REPLY, message) == [("faq", Reply(answer))]
    assert await host.run(Mode.SUGGEST, message) == [("faq", Draft(answer, "FAQ match: 挂失"))]
    assert await host.run(Mode.CLASSIFY, message) == [("faq", Tags(("card_loss", "complaint")))]
    assert [o[2] for o in outcomes] == ["ok", "ok", "ok"]
    await host.aclose()


@pytest.mark.asyncio
async def test_keyword_matching_ignores_case_and_width() -> None:
    plugin = KeywordFaqPlugin(FAQ_OPTIONS)
    for text in ("atm 吞了我的卡", "ＡＴＭ机出问题了", "The Atm kept my card"):
        assert plugin.answer(text) == (FAQ_OPTIONS["faq"][1]["answer"], "atm")
        assert await plugin.handle(Mode.CLASSIFY, context(text)) == Tags(("atm",))


@pytest.mark.asyncio
async def test_keyword_first_match_wins_and_all_mode_needs_every_keyword() -> None:
    plugin = KeywordFaqPlugin(FAQ_OPTIONS)
    assert plugin.answer("ATM 吞卡后卡丢失了") == (FAQ_OPTIONS["faq"][0]["answer"], "丢失")
    strict = KeywordFaqPlugin({**FAQ_OPTIONS, "match": "all"})
    assert strict.answer("卡丢失了") is None
    assert strict.answer("丢失了，要挂失") == (FAQ_OPTIONS["faq"][0]["answer"], "挂失")
    assert strict.classify("投诉") == ("complaint",)


@pytest.mark.asyncio
async def test_keyword_answers_only_visitors_and_nothing_without_a_match() -> None:
    host, outcomes = make_host(faq())
    assert await host.run(Mode.AUTO_REPLY, context("怎么挂失？", role="agent")) == []
    assert await host.run(Mode.AUTO_REPLY, context("今天天气不错")) == []
    assert await host.run(Mode.CLASSIFY, context("今天天气不错")) == []
    assert [o[2] for o in outcomes] == ["empty", "empty", "empty"]


def test_keyword_finds_overlapping_and_repeated_keywords() -> None:
    plugin = KeywordFaqPlugin(
        {"tags": {"credit": ["信用"], "credit_card": ["信用卡"], "fee": ["年费"], "lost": ["卡丢了"]}, "match": "any"}
    )
    assert plugin.classify("信用信用卡年费，卡丢了") == ("credit", "credit_card", "fee", "lost")
    assert plugin.classify("信用卡丢了") == ("credit", "credit_card", "lost")
    assert plugin.classify("信卡用") == ()


def test_keyword_serves_only_the_modes_its_options_allow() -> None:
    assert KeywordFaqPlugin({"tags": {"a": ["x"]}}).modes == {Mode.CLASSIFY}
    assert KeywordFaqPlugin({"faq": FAQ_OPTIONS["faq"]}).modes == {Mode.AUTO_REPLY, Mode.SUGGEST}


# --- the OpenAI-compatible plugin against the fake --------------------------------------------------------


@pytest.mark.asyncio
async def test_openai_request_shape(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_LLM_KEY", "sk-test-123")
    host, _ = make_host(openai(fake, api_key_env="KEFU_LLM_KEY", system_prompt="你是银行客服。", temperature=0.1))
    conversation = context(
        "卡在哪里挂失？",
        ("visitor", "你好"),
        ("system", "agent 7 joined"),
        ("agent", "您好，请问有什么可以帮您？"),
        ("visitor", "我的卡丢了"),
        ("visitor", "很着急"),
    )
    assert await host.run(Mode.SUGGEST, conversation) == [("llm", Draft("fake reply"))]
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.headers["content-type"] == "application/json"
    assert request.json["model"] == "qwen2-7b"
    assert request.json["temperature"] == 0.1
    assert request.json["stream"] is False
    assert request.json["messages"] == [
        {"role": "system", "content": "你是银行客服。"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "您好，请问有什么可以帮您？"},
        {"role": "user", "content": "我的卡丢了\n很着急\n卡在哪里挂失？"},
    ]
    await host.aclose()


@pytest.mark.asyncio
async def test_openai_history_is_bounded_newest_kept(fake: FakeOpenAI) -> None:
    host, _ = make_host(openai(fake, max_history=2, api_key_env=None))
    latest = Turn("visitor", "v", "latest", 9)
    history = tuple(Turn("visitor" if i % 2 else "agent", "s", f"turn {i}", i) for i in range(1, 9))
    await host.run(Mode.SUGGEST, Context("bank", 1, None, {}, history, latest, None))  # latest not in history
    messages = fake.requests[0].json["messages"]
    assert [m["content"] for m in messages[1:]] == ["turn 8", "latest"]
    assert "authorization" not in fake.requests[0].headers
    await host.aclose()


@pytest.mark.asyncio
async def test_openai_auto_reply_and_suggest_use_the_answer(fake: FakeOpenAI) -> None:
    fake.behaviour = echo("答复：")
    host, _ = make_host(openai(fake))
    assert await host.run(Mode.AUTO_REPLY, context("怎么挂失？")) == [("llm", Reply("答复：怎么挂失？"))]
    assert await host.run(Mode.SUGGEST, context("利率多少？")) == [("llm", Draft("答复：利率多少？"))]
    await host.aclose()


@pytest.mark.asyncio
async def test_openai_declines_drops_reasoning_and_never_auto_sends_a_cut_answer(fake: FakeOpenAI) -> None:
    host, outcomes = make_host(openai(fake))
    fake.behaviour = reply("NO_ANSWER")
    assert await host.run(Mode.AUTO_REPLY, context("今天股市怎么样？")) == []
    fake.behaviour = reply("<think>用户想挂失。</think>\n\n请在手机银行办理挂失。")
    assert await host.run(Mode.AUTO_REPLY, context("挂失")) == [("llm", Reply("请在手机银行办理挂失。"))]
    fake.behaviour = reply("<think>想了很久", finish_reason="length")
    assert await host.run(Mode.SUGGEST, context("挂失")) == []
    fake.behaviour = reply("请在手机银行", finish_reason="length")
    assert await host.run(Mode.AUTO_REPLY, context("挂失")) == []
    assert await host.run(Mode.SUGGEST, context("挂失")) == [("llm", Draft("请在手机银行", "cut short at max_tokens"))]
    assert [o[2] for o in outcomes] == ["empty", "ok", "empty", "error", "ok"]
    await host.aclose()


@pytest.mark.parametrize(
    ("answer", "allowed", "tags"),
    [
        ("Card_Loss, 投诉", None, ("card_loss", "投诉")),
        ("card_loss，complaint、card_loss", None, ("card_loss", "complaint")),
        ('["card_loss", "Complaint"]', None, ("card_loss", "complaint")),
        ("- card_loss\n- fraud\n- weather", ["card_loss", "fraud"], ("card_loss", "fraud")),
        ("NONE", None, ()),
        ("x" * 65 + ", ok", None, ("ok",)),
        (", ".join(f"t{i}" for i in range(40)), None, tuple(f"t{i}" for i in range(MAX_TAGS))),
    ],
)
@pytest.mark.asyncio
async def test_openai_classify_parses_tags(
    fake: FakeOpenAI, answer: str, allowed: list[str] | None, tags: tuple[str, ...]
) -> None:
    fake.behaviour = reply(answer)
    options: dict[str, Any] = {"tags": allowed} if allowed else {}
    host, _ = make_host(openai(fake, modes=frozenset({Mode.CLASSIFY}), **options))
    assert await host.run(Mode.CLASSIFY, context("我的卡丢了，我要投诉")) == ([("llm", Tags(tags))] if tags else [])
    system = fake.requests[0].json["messages"][0]
    assert system["role"] == "system" and "comma-separated" in system["content"]
    if allowed:
        assert "Allowed tags: card_loss, fraud." in system["content"]
    await host.aclose()


@pytest.mark.parametrize(
    "behaviour",
    [
        status(500),
        status(302, {}),
        malformed(),
        json_body({"choices": []}),
        json_body({"choices": [{"message": {"content": None}}]}),
        json_body(["not", "an", "object"]),
        json_body({"choices": [{"message": {"content": "x" * 300_000}}]}),  # larger than MAX_RESPONSE_BYTES
    ],
    ids=["500", "redirect", "malformed", "no-choices", "null-content", "array", "oversized"],
)
@pytest.mark.asyncio
async def test_openai_endpoint_failures_are_errors(
    fake: FakeOpenAI, behaviour: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake.behaviour = behaviour
    host, outcomes = make_host(openai(fake), faq())
    assert await host.run(Mode.SUGGEST, context("怎么挂失？")) == [
        ("faq", Draft(FAQ_OPTIONS["faq"][0]["answer"], "FAQ match: 挂失"))
    ]
    assert outcomes == [("llm", Mode.SUGGEST, "error"), ("faq", Mode.SUGGEST, "ok")]
    assert "llm suggest: error" in caplog.text
    await host.aclose()


@pytest.mark.asyncio
async def test_openai_unreachable_endpoint_is_an_error() -> None:
    with FakeOpenAI() as gone:
        config = openai(gone)
    host, outcomes = make_host(config)
    assert await host.run(Mode.SUGGEST, context("在吗")) == []
    assert outcomes == [("llm", Mode.SUGGEST, "error")]
    await host.aclose()


@pytest.mark.asyncio
async def test_a_slow_endpoint_times_out_while_a_fast_plugin_answers(fake: FakeOpenAI) -> None:
    fake.behaviour = delayed(30, reply("too late"))
    host, outcomes = make_host(openai(fake, timeout_s=0.2), faq())
    results = await host.run(Mode.AUTO_REPLY, context("我要挂失"))
    assert results == [("faq", Reply(FAQ_OPTIONS["faq"][0]["answer"]))]
    assert sorted(outcomes) == [("faq", Mode.AUTO_REPLY, "ok"), ("llm", Mode.AUTO_REPLY, "timeout")]
    assert len(fake.requests) == 1
    await host.aclose()


@pytest.mark.asyncio
async def test_proxy_variables_are_ignored(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = "http://127.0.0.1:9"
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(variable, dead)
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    async with httpx.AsyncClient() as trusting:  # the control: a client that honours the variables fails
        with pytest.raises(httpx.ConnectError):  # it went to the dead proxy, not the live fake
            await trusting.get(f"{fake.url}/models")
    host, _ = make_host(openai(fake))
    assert await host.run(Mode.SUGGEST, context("在吗")) == [("llm", Draft("fake reply"))]
    assert len(fake.requests) == 1
    await host.aclose()


@pytest.mark.asyncio
async def test_openai_logs_no_conversation_text(fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kefu")
    host, _ = make_host(openai(fake))
    fake.behaviour = echo("卡号")
    await host.run(Mode.SUGGEST, context("我的卡号是 6222020200112233"))
    fake.behaviour = status(500)
    await host.run(Mode.SUGGEST, context("我的卡号是 6222020200112233"))
    assert "bytes received" in caplog.text and "HTTP 500" in caplog.text
    assert "6222" not in caplog.text
    await host.aclose()


@pytest.mark.asyncio
async def test_after_aclose_the_plugin_holds_no_client_and_runs_nothing(fake: FakeOpenAI) -> None:
    plugin = OpenAIChatPlugin({"endpoint": fake.url, "model": "m"})
    assert await plugin.handle(Mode.SUGGEST, context("在吗")) == Draft("fake reply")
    await plugin.aclose()
    with pytest.raises(PluginCallError, match="closed"):
        await plugin.handle(Mode.SUGGEST, context("在吗"))
    host, outcomes = make_host(openai(fake))
    await host.aclose()
    assert await host.run(Mode.SUGGEST, context("在吗")) == [] and outcomes == []


# --- the endpoint check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8000/v1", "http://10.1.2.3:8000/v1/", "https://172.20.0.5/v1", "http://192.168.1.9/v1",
     "http://[::1]:8000/v1", "http://[fd00::5]/v1", "http://localhost:8000/v1", "http://169.254.10.10/v1"],
)  # fmt: skip
def test_private_endpoints_are_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint) == endpoint.rstrip("/")


@pytest.mark.parametrize(
    "endpoint",
    ["http://8.8.8.8/v1", "https://1.1.1.1/v1", "http://[2001:4860::8888]/v1", "http://[::ffff:8.8.8.8]/v1",
     "http://100.64.0.1/v1", "http://0.0.0.0/v1", "http://192.0.2.1/v1"],
)  # fmt: skip
def test_public_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(PluginError, match="outside the private network"):
        check_endpoint(endpoint)
    assert check_endpoint(endpoint, allow_public=True) == endpoint


def test_a_name_is_resolved_once_and_every_address_must_be_private() -> None:
    calls: list[str] = []

    def resolver(addresses: list[str]) -> builtin_plugins.Resolver:
        def resolve(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
            calls.append(host)
            return [(2, 1, 6, "", (a, 443)) for a in addresses]

        return resolve

    assert check_endpoint("https://llm.bank.internal/v1", resolve=resolver(["10.0.0.7", "10.0.0.8"]))
    with pytest.raises(PluginError, match=r"'llm\.example\.com' is 93\.184\.216\.34"):
        check_endpoint("https://llm.example.com/v1", resolve=resolver(["10.0.0.7", "93.184.216.34"]))
    assert calls == ["llm.bank.internal", "llm.example.com"]


def test_an_unresolvable_name_is_refused() -> None:
    def fail(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise OSError("Name or service not known")

    with pytest.raises(PluginError, match="does not resolve"):
        check_endpoint("http://llm.nowhere.internal/v1", resolve=fail)


def test_the_plugin_refuses_a_public_endpoint_unless_allowed() -> None:
    with pytest.raises(PluginError, match=r"plugin 'llm' \(kind 'openai'\): endpoint host '8\.8\.8\.8'"):
        make_host(PluginConfig("llm", "openai", ALL, options={"endpoint": "http://8.8.8.8/v1", "model": "m"}))
    options = {"endpoint": "http://8.8.8.8/v1", "model": "m", "allow_public": True}
    make_host(PluginConfig("llm", "openai", ALL, options=options))  # built, never called: no traffic


# --- the host ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_plugin_that_raises_is_an_error_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    configs = [
        PluginConfig("boom", "raising", ALL),
        PluginConfig("one", "fixed", ALL, options={"result": Reply("一")}),
        PluginConfig("two", "fixed", ALL, options={"result": Reply("二")}),
    ]
    host, outcomes = make_host(*configs, factories=FACTORIES)
    assert await host.run(Mode.AUTO_REPLY, context("账号 6222020200112233")) == [
        ("one", Reply("一")),
        ("two", Reply("二")),
    ]
    assert outcomes == [
        ("boom", Mode.AUTO_REPLY, "error"),
        ("one", Mode.AUTO_REPLY, "ok"),
        ("two", Mode.AUTO_REPLY, "ok"),
    ]
    assert "boom auto_reply: error: ValueError at test_plugins.py:" in caplog.text
    assert "6222" not in caplog.text  # an arbitrary exception's message may hold conversation text: never logged
    await host.aclose()


@pytest.mark.parametrize(
    ("mode", "result", "outcome", "expected"),
    [
        (Mode.AUTO_REPLY, Draft("草稿"), "error", None),
        (Mode.SUGGEST, Reply("回复"), "error", None),
        (Mode.CLASSIFY, "card_loss", "error", None),
        (Mode.AUTO_REPLY, Reply("  \n "), "empty", None),
        (Mode.AUTO_REPLY, Reply("  您好\n"), "ok", Reply("您好")),
        (Mode.AUTO_REPLY, Reply("x" * (MAX_TEXT_CHARS + 1)), "error", None),
        (Mode.AUTO_REPLY, Reply("bell\x07"), "error", None),
        (Mode.AUTO_REPLY, Reply("\ud800"), "error", None),
        (Mode.SUGGEST, Draft("草稿", "x" * 501), "error", None),
        (Mode.CLASSIFY, Tags((" VIP ", "ｖｉｐ", "投诉", "")), "ok", Tags(("vip", "投诉"))),
        (Mode.CLASSIFY, Tags(("",)), "empty", None),
        (Mode.CLASSIFY, Tags(("x" * 65,)), "error", None),
        (Mode.CLASSIFY, Tags(tuple(f"t{i}" for i in range(MAX_TAGS + 1))), "error", None),
        (Mode.CLASSIFY, Tags(["a"]), "error", None),  # type: ignore[arg-type]
    ],
)
@pytest.mark.asyncio
async def test_results_are_checked_against_their_mode(
    mode: Mode, result: object, outcome: str, expected: Result | None
) -> None:
    host, outcomes = make_host(PluginConfig("p", "fixed", ALL, options={"result": result}), factories=FACTORIES)
    assert await host.run(mode, context("你好")) == ([("p", expected)] if expected else [])
    assert outcomes == [("p", mode, outcome)]
    await host.aclose()


@pytest.mark.asyncio
async def test_a_plugin_whose_handle_is_not_a_coroutine_is_an_error() -> None:
    class Synchronous(Fixed):
        def handle(self, mode: Mode, context: Context) -> Result | None:  # type: ignore[override]
            return Reply("sync")

    host, outcomes = make_host(PluginConfig("sync", "sync", ALL), factories={"sync": Synchronous})
    assert await host.run(Mode.AUTO_REPLY, context("你好")) == []
    assert outcomes == [("sync", Mode.AUTO_REPLY, "error")]
    await host.aclose()


def test_validate_result_is_usable_alone() -> None:
    assert validate_result(Mode.CLASSIFY, Tags(("A", "a"))) == Tags(("a",))
    with pytest.raises(PluginCallError, match="auto_reply expects Reply, got Tags"):
        validate_result(Mode.AUTO_REPLY, Tags(("a",)))


@pytest.mark.asyncio
async def test_a_plugin_ignoring_cancellation_neither_holds_run_nor_piles_up() -> None:
    gate = asyncio.Event()
    options = {"gate": gate}
    host, outcomes = make_host(
        PluginConfig("stuck", "stubborn", ALL, timeout_s=0.05, max_in_flight=1, options=options), factories=FACTORIES
    )
    assert await host.run(Mode.AUTO_REPLY, context("一")) == []
    assert await host.run(Mode.AUTO_REPLY, context("二")) == []
    assert outcomes == [("stuck", Mode.AUTO_REPLY, "timeout"), ("stuck", Mode.AUTO_REPLY, "busy")]
    gate.set()
    await host.aclose()


@pytest.mark.asyncio
async def test_cancelling_run_cancels_the_calls() -> None:
    started = asyncio.Event()

    class Waiting(Fixed):
        cancelled = False

        async def handle(self, mode: Mode, context: Context) -> Result | None:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                Waiting.cancelled = True
                raise
            return None

    host, outcomes = make_host(PluginConfig("w", "waiting", ALL, timeout_s=30), factories={"waiting": Waiting})
    run = asyncio.create_task(host.run(Mode.SUGGEST, context("你好")))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.sleep(0)
    assert Waiting.cancelled and outcomes == []
    await host.aclose()


@pytest.mark.asyncio
async def test_an_outcome_callback_that_raises_does_not_break_run(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*outcome: object) -> None:
        raise RuntimeError("metrics down")

    host = PluginHost([faq()], on_outcome=broken)
    host.load()
    assert await host.run(Mode.CLASSIFY, context("投诉")) == [("faq", Tags(("complaint",)))]
    assert "outcome callback failed" in caplog.text
    await host.aclose()


@pytest.mark.asyncio
async def test_failures_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    host, outcomes = make_host(PluginConfig("boom", "raising", ALL), factories=FACTORIES)
    for _ in range(5):
        await host.run(Mode.SUGGEST, context("你好"))
    assert [o[2] for o in outcomes] == ["error"] * 5
    assert caplog.text.count("boom suggest: error") == 1
    await host.aclose()


@pytest.mark.asyncio
async def test_aclose_closes_every_plugin_and_is_idempotent() -> None:
    plugins: list[Fixed] = []

    def factory(options: Mapping[str, Any]) -> Plugin:
        plugins.append(Fixed(options))
        return plugins[-1]

    host, _ = make_host(PluginConfig("a", "f", ALL), PluginConfig("b", "f", ALL), factories={"f": factory})
    await host.aclose()
    await host.aclose()
    assert [p.closed for p in plugins] == [True, True]


def test_load_twice_is_refused() -> None:
    host, _ = make_host(faq())
    with pytest.raises(PluginError, match="already loaded"):
        host.load()


@pytest.mark.asyncio
async def test_run_before_load_runs_nothing() -> None:
    assert await PluginHost([faq()]).run(Mode.SUGGEST, context("挂失")) == []
