"""Sentiment scoring in a worker process: real SnowNLP scores, batching, bounds, a killed worker, close."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

pytest.importorskip("snownlp")

from kefu.server.service.sentiment import MAX_TEXT_CHARS, NEUTRAL, ScorerError, SentimentScorer

ANGRY = [
    "这个服务太差了，我很生气",  # SnowNLP 0.12.3: 0.067
    "你们的客服太烂了，等了一个小时都没人理，我要投诉！",  # 0.00004
    "垃圾产品，骗子公司，再也不买了",  # 0.0045
]
HAPPY = [
    "非常感谢你的帮助，服务很好，我很满意！",  # 0.964
    "谢谢你们，问题解决了，太棒了",  # 0.867
]
SLOW = "你们的客服太烂了，等了一个小时都没人理，我要投诉！非常感谢你的帮助，服务很好，我很满意！" * 20
"""A text that keeps the worker busy for tens of milliseconds (it is cut to MAX_TEXT_CHARS)."""

module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scorer() -> AsyncIterator[SentimentScorer]:
    """One worker for the module: starting one (spawn, import snownlp, load the model) takes seconds."""
    s = SentimentScorer()
    await s.start()
    yield s
    await s.close()


async def scores(scorer: SentimentScorer, texts: list[str]) -> list[float]:
    futures = [scorer.score(text) for text in texts]
    assert all(f is not None for f in futures)
    return list(await asyncio.gather(*(f for f in futures if f is not None)))


@module_loop
async def test_angry_and_happy(scorer: SentimentScorer) -> None:
    angry = await scores(scorer, ANGRY)
    happy = await scores(scorer, HAPPY)
    assert all(s < 0.3 for s in angry), angry
    assert all(s > 0.7 for s in happy), happy


@module_loop
async def test_scores_come_from_another_process(scorer: SentimentScorer) -> None:
    assert scorer.worker_pid is not None
    assert scorer.worker_pid != os.getpid()
    os.kill(scorer.worker_pid, 0)  # alive, and ours to signal


@module_loop
async def test_empty_text_is_neutral_without_a_round_trip(scorer: SentimentScorer) -> None:
    before = scorer.batches
    for text in ["", "   ", "\n\t"]:
        future = scorer.score(text)
        assert future is not None
        assert future.done()
        assert future.result() == NEUTRAL
    assert scorer.batches == before
    assert scorer.pending == 0


@module_loop
async def test_one_loop_iteration_is_one_batch(scorer: SentimentScorer) -> None:
    texts = [f"第{i}条消息：{ANGRY[i % 3] if i % 2 else HAPPY[i % 2]}" for i in range(200)]
    before = scorer.batches
    futures = [scorer.score(text) for text in texts]
    assert scorer.pending == 200
    await asyncio.gather(*(f for f in futures if f is not None))
    assert scorer.batches - before == 1
    assert scorer.pending == 0

    before = scorer.batches
    for text in texts[:3]:  # awaited one at a time: one round trip each
        future = scorer.score(text)
        assert future is not None
        await future
    assert scorer.batches - before == 3


@module_loop
async def test_batches_are_capped(scorer: SentimentScorer) -> None:
    before = scorer.batches
    results = await scores(scorer, [HAPPY[0]] * (scorer.batch_max + 10))
    assert scorer.batches - before == 2
    assert len(set(results)) == 1


@module_loop
async def test_long_text_is_cut(scorer: SentimentScorer) -> None:
    long_text = "我很满意" * 1000
    (whole, cut) = await scores(scorer, [long_text, long_text[:MAX_TEXT_CHARS]])
    assert whole == cut


@module_loop
async def test_killed_worker_fails_its_batch_then_recovers(scorer: SentimentScorer) -> None:
    pid = scorer.worker_pid
    assert pid is not None
    futures = [scorer.score(SLOW) for _ in range(40)]  # ~1 s of work for the worker
    for _ in range(5):
        await asyncio.sleep(0)  # the batch leaves
    os.kill(pid, signal.SIGKILL)
    results = await asyncio.gather(*(f for f in futures if f is not None), return_exceptions=True)
    assert results
    assert all(isinstance(r, ScorerError) for r in results), results
    assert "died" in str(results[0])

    (happy,) = await scores(scorer, [HAPPY[0]])  # the next batch starts a new worker
    assert happy > 0.7
    assert scorer.worker_pid not in (None, pid, os.getpid())


@pytest.mark.asyncio
async def test_overflow_and_close_without_a_worker() -> None:
    scorer = SentimentScorer(max_pending=3)
    futures = [scorer.score(f"消息{i}") for i in range(3)]
    assert scorer.score("one too many") is None
    empty = scorer.score(" ")  # still answered: it needs no room
    assert empty is not None
    assert empty.result() == NEUTRAL
    assert scorer.pending == 3
    await scorer.close()  # before the sender ever ran: no worker was started
    assert scorer.worker_pid is None
    for future in futures:
        assert future is not None
        with pytest.raises(ScorerError, match="closed"):
            future.result()
    with pytest.raises(RuntimeError):
        scorer.score("after close")
