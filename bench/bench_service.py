"""Micro-benchmarks of the service layer's two off-loop workers: Lua routing rules and sentiment scoring.

Run ``.venv/bin/python -m bench.bench_service`` from the repository root (``--quick`` for a short run). It prints
two tables and writes every number to ``bench/out/service.json``.

What is measured, and why
-------------------------
1. **A routing rule per new conversation** (``kefu.server.service.rules``). ``RuleEngine.evaluate`` on the
   visitor the desk builds, for a trivial rule (``return nil``) and a typical one (sentiment, VIP level, sticky
   agent, a plain ``string.find``): visitor conversion, fresh environment, hook, result check, all included.
   The ``_fresh_runtime`` rows time the strategy the engine does *not* use, a new ``LuaRuntime`` with the
   sandbox set up and the rule compiled for every evaluation, which is what isolation would cost without reuse.
   ``rule_typical_async`` is ``await evaluate_async`` one at a time: the hop to the engine's thread and back.
2. **Sentiment per message** (``kefu.server.service.sentiment``). 2,000 short customer messages (a corpus of
   real-looking complaints, questions and thanks, numbered so that no two are equal) are submitted in one loop
   iteration and awaited: wall time per message, worker batching included. ``snownlp_inline`` scores the same
   messages in this process, the cost the event loop would pay without the worker.
   ``sentiment_round_trip`` awaits one message at a time: the latency of an idle scorer.
3. **Event-loop lag while scoring.** A ticker sleeps 1 ms at a time and records how late each wake-up is. Each
   run measures a baseline window with nothing else to do, then a window in which 2,000 messages are scored
   through the worker, in the same process: the table shows the median over runs of each window's maximum and
   99th percentile lateness.

Every timed row runs once to warm up, then ``runs`` times (7; 3 with ``--quick``), through ``benchlib``: the
table shows the median over runs and the range. The worker is started once, before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.benchlib import Result, Stopwatch, Trial, machine, measure, table
from kefu.server.service.rules import RuleEngine, RuleLimits, _plain, _Sandbox
from kefu.server.service.sentiment import SentimentScorer

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "service.json"

VISITOR: dict[str, object] = {
    "channel": "wechat",
    "vip": 1,
    "language": "zh",
    "sentiment": 0.62,
    "tenant": "acme",
    "history": {"conversations": 1, "last_agent": "agent-7", "avg_sentiment": 0.55},
    "city": "杭州",
    "page": "https://shop.example.com/orders/12345",
}
"""What the desk's visitor view holds for a returning WeChat visitor."""

TRIVIAL = "function route(v) return nil end"
TYPICAL = """
local SENIOR = {wechat = "senior-wx", web = "senior-web"}
function route(v)
  if v.sentiment and v.sentiment < 0.3 then
    return {group = SENIOR[v.channel] or "senior", priority = 50, note = "angry visitor on " .. v.channel}
  end
  if v.vip >= 3 then
    local skills = {}
    if v.language ~= "zh" then skills[#skills + 1] = "lang:" .. v.language end
    return {group = "vip", priority = 10 * v.vip, skills = skills}
  end
  if v.history.last_agent and v.history.conversations > 2 then
    return {agent = v.history.last_agent, note = "returning visitor"}
  end
  if string.find(v.page or "", "/orders/", 1, true) then return {group = "orders", note = "order page"} end
end
"""
"""A rule of the kind the issue describes; for VISITOR it runs every branch test and returns the last one."""

CORPUS = [
    "这个服务太差了，我很生气",
    "你们的客服太烂了，等了一个小时都没人理，我要投诉！",
    "我的订单三天了还没发货，怎么回事？",
    "请问怎么申请退款",
    "发票可以开公司抬头吗",
    "收到的商品有破损，包装也压坏了",
    "好的，谢谢",
    "非常感谢你的帮助，服务很好，我很满意！",
    "谢谢你们，问题解决了，太棒了",
    "能不能帮我改一下收货地址",
    "快递员态度很差，东西直接扔在门口",
    "你好，在吗？",
    "这个尺码偏小，可以换大一号吗",
    "优惠券为什么用不了",
    "已经第三次联系你们了，还是没人解决，太失望了",
    "客服小姐姐很耐心，给你们点赞",
]
"""Messages of 4 to 25 characters, the length of most chat messages."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many runs, and how much work each run times."""

    runs: int
    evaluations: int
    """Rule evaluations per run (reused runtime)."""
    fresh: int
    """Rule evaluations per run with a fresh runtime each."""
    messages: int
    """Messages scored per run (and per lag window)."""
    round_trips: int
    """One-at-a-time sentiment round trips per run."""


FULL = Sizes(runs=7, evaluations=5_000, fresh=300, messages=2_000, round_trips=200)
QUICK = Sizes(runs=3, evaluations=1_000, fresh=50, messages=2_000, round_trips=50)


def messages(n: int) -> list[str]:
    """`n` distinct messages from the corpus."""
    return [f"{CORPUS[i % len(CORPUS)]}（{i}）" for i in range(n)]


# --- rules -----------------------------------------------------------------------------------------------------


def rule_reused(source: str, n: int) -> Trial:
    engine = RuleEngine(source)

    def trial(watch: Stopwatch) -> int:
        with watch.timing():
            for _ in range(n):
                engine.evaluate(VISITOR)
        return n

    return trial


def rule_fresh(source: str, n: int) -> Trial:
    limits = RuleLimits()

    def trial(watch: Stopwatch) -> int:
        with watch.timing():
            for _ in range(n):
                data: Any = _plain(VISITOR, 0, [1 << 20])
                _Sandbox(source, "route.lua", limits).run(data, limits)
        return n

    return trial


def rule_async(source: str, n: int, loop: asyncio.AbstractEventLoop) -> Trial:
    engine = RuleEngine(source)

    async def evaluations() -> None:
        for _ in range(n):
            await engine.evaluate_async(VISITOR)

    def trial(watch: Stopwatch) -> int:
        with watch.timing():
            loop.run_until_complete(evaluations())
        return n

    return trial


# --- sentiment -------------------------------------------------------------------------------------------------


class Sentiment:
    """One started scorer for every sentiment trial, on one event loop kept for the whole program."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scorer = SentimentScorer()
        self.loop.run_until_complete(self.scorer.start())

    def close(self) -> None:
        self.loop.run_until_complete(self.scorer.close())

    async def score_all(self, texts: list[str]) -> None:
        futures = [self.scorer.score(text) for text in texts]
        await asyncio.gather(*(f for f in futures if f is not None))

    def batched(self, n: int) -> Trial:
        texts = messages(n)

        def trial(watch: Stopwatch) -> int:
            with watch.timing():
                self.loop.run_until_complete(self.score_all(texts))
            return n

        return trial

    def round_trip(self, n: int) -> Trial:
        texts = messages(n)

        async def one_by_one() -> None:
            for text in texts:
                future = self.scorer.score(text)
                assert future is not None
                await future

        def trial(watch: Stopwatch) -> int:
            with watch.timing():
                self.loop.run_until_complete(one_by_one())
            return n

        return trial

    async def lag_window(self, texts: list[str] | None, seconds: float) -> tuple[list[float], float]:
        """Lateness of 1 ms sleeps (seconds) while `texts` are scored, or for `seconds` if there are none."""
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                due = loop.time() + 0.001
                await asyncio.sleep(0.001)
                lags.append(loop.time() - due)

        task = asyncio.create_task(ticker())
        started = loop.time()
        if texts is None:
            await asyncio.sleep(seconds)
        else:
            await self.score_all(texts)
        elapsed = loop.time() - started
        done.set()
        await task
        return lags, elapsed

    def lag(self, n: int, runs: int) -> dict[str, Any]:
        """Per run: a baseline window as long as the previous scoring window, then a scoring window."""
        windows: dict[str, list[dict[str, float]]] = {"baseline": [], "scoring": []}
        texts = messages(n)
        seconds = 1.0
        for _ in range(runs + 1):  # the first pair warms up
            base, _ = self.loop.run_until_complete(self.lag_window(None, seconds))
            busy, seconds = self.loop.run_until_complete(self.lag_window(texts, 0.0))
            windows["baseline"].append(summary(base))
            windows["scoring"].append(summary(busy) | {"window_s": seconds})
        return {name: rows[1:] for name, rows in windows.items()}


def inline_snownlp(n: int) -> Trial:
    from snownlp import SnowNLP  # noqa: PLC0415 - the comparison row loads the model into this process

    texts = messages(n)
    SnowNLP(texts[0]).sentiments  # noqa: B018 - load the model untimed

    def trial(watch: Stopwatch) -> int:
        with watch.timing():
            for text in texts:
                SnowNLP(text).sentiments  # noqa: B018
        return n

    return trial


def summary(lags: list[float]) -> dict[str, float]:
    """Max and p99 lateness in milliseconds, and the number of ticks."""
    ordered = sorted(lags)
    return {
        "max_ms": ordered[-1] * 1000,
        "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000,
        "ticks": len(ordered),
    }


def lag_table(lag: dict[str, list[dict[str, float]]]) -> str:
    head = f"{'1 ms ticker lateness':40} {'max ms':>10} {'min..max':>15} {'p99 ms':>9} {'ticks':>7}"
    lines = [head, "-" * len(head)]
    for name, rows in lag.items():
        worst = [r["max_ms"] for r in rows]
        p99 = statistics.median(r["p99_ms"] for r in rows)
        ticks = statistics.median(r["ticks"] for r in rows)
        label = "baseline (nothing else)" if name == "baseline" else "scoring 2,000 messages in the worker"
        span = f"{min(worst):.2f}..{max(worst):.2f}"
        lines.append(f"{label:40} {statistics.median(worst):10.2f} {span:>15} {p99:9.2f} {ticks:7.0f}")
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------------------------------------


def run(sizes: Sizes, log: Any = print) -> tuple[list[Result], dict[str, Any]]:
    """Every row, then the lag windows; one event loop for all the asynchronous ones."""
    loop = asyncio.new_event_loop()
    try:
        results = measure_rows(rule_rows(sizes, loop), sizes.runs, log)
        sentiment = Sentiment(loop)
        try:
            results += measure_rows(sentiment_rows(sizes, sentiment), sizes.runs, log)
            batches_before = sentiment.scorer.batches
            lag = sentiment.lag(sizes.messages, sizes.runs)
            lag["batches_per_window"] = (sentiment.scorer.batches - batches_before) / (sizes.runs + 1)
        finally:
            sentiment.close()
    finally:
        loop.close()
    return results, lag


Row = tuple[str, str, str, Trial]


def rule_rows(sizes: Sizes, loop: asyncio.AbstractEventLoop) -> list[Row]:
    n, fresh = sizes.evaluations, sizes.fresh
    return [
        ("rule_trivial", "rules", "evaluate, return nil, reused runtime", rule_reused(TRIVIAL, n)),
        ("rule_typical", "rules", "evaluate, typical rule, reused runtime", rule_reused(TYPICAL, n)),
        ("rule_trivial_fresh_runtime", "rules", "new LuaRuntime per evaluation", rule_fresh(TRIVIAL, fresh)),
        ("rule_typical_fresh_runtime", "rules", "new LuaRuntime per evaluation", rule_fresh(TYPICAL, fresh)),
        ("rule_typical_async", "rules", "await evaluate_async, one at a time", rule_async(TYPICAL, n, loop)),
    ]


def sentiment_rows(sizes: Sizes, sentiment: Sentiment) -> list[Row]:
    return [
        ("sentiment_batched", "sentiment", "all messages at once, per message", sentiment.batched(sizes.messages)),
        ("sentiment_round_trip", "sentiment", "one message at a time", sentiment.round_trip(sizes.round_trips)),
        ("snownlp_inline", "sentiment", "SnowNLP in this process", inline_snownlp(sizes.messages)),
    ]


def measure_rows(rows: list[Row], runs: int, log: Any) -> list[Result]:
    results = []
    for name, group, description, trial in rows:
        results.append(measure(name, group, description, trial, runs))
        log(f"  {name}: {results[-1].median:.3f} us")
    return results


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description="Micro-benchmarks of kefu's routing rules and sentiment worker.")
    parser.add_argument("--quick", action="store_true", help="3 runs of smaller batches")
    parser.add_argument("--runs", type=int, help="timed runs per benchmark (default 7, or 3 with --quick)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default bench/out/service.json)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = Sizes(args.runs, sizes.evaluations, sizes.fresh, sizes.messages, sizes.round_trips)
    command = " ".join([".venv/bin/python -m bench.bench_service", *(sys.argv[1:] if argv is None else argv)])
    info = machine()
    print(command)
    print(", ".join(f"{k}={v}" for k, v in info.items()))
    print(sizes)
    started = time.perf_counter()
    results, lag = run(sizes)
    info["loadavg_after"] = os.getloadavg()
    info["elapsed_s"] = round(time.perf_counter() - started, 1)
    print()
    print(table(results))
    print()
    windows = {k: v for k, v in lag.items() if k in ("baseline", "scoring")}
    print(lag_table(windows))
    print(f"(worker batches per scoring window: {lag['batches_per_window']:.1f})")
    document = {
        "command": command,
        "machine": info,
        "sizes": asdict(sizes),
        "results": [r.summary() for r in results],
        "loop_lag": lag,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
