"""Sentiment scores for visitor messages (SnowNLP, offline), computed in a worker process.

Theory of operation
-------------------
SnowNLP is pure Python: it holds the GIL for about a millisecond per short message (~70 us per Chinese character
here), so a thread would still stall the event loop. Scoring runs in one worker process, started with "spawn" (no
inherited event loop, sockets or locks), which imports snownlp and loads its model once (~1.7 s here) and then
answers batches: a list of texts in, a list of scores out, over a `multiprocessing` pipe.

The worker starts with the first text scored (or `start`), not with the scorer: a server that scores nothing never
pays for the model (about 450 MB of RSS). `score` queues the text and returns a future. The first text queued starts
a sender task; a task's first step runs on the next loop iteration, so every text submitted during this iteration
goes out in the same batch. One batch is in flight at a time: while the worker is busy, new texts pile up and leave
together as the next batch (at most ``batch_max``), so the busier the server, the fewer round trips per message. The
blocking pipe I/O (send, then wait for the answer) happens in one helper thread, never on the loop.

Bounds: at most ``max_pending`` texts are waiting (queued or in flight); past that `score` returns None and the
caller counts a dropped score. Texts are cut to `MAX_TEXT_CHARS`.

Failures: if the worker dies, the pipe reports end-of-file; the batch in flight fails with `ScorerError`, the dead
process is reaped, and the next batch starts a new worker (texts still queued wait for it). `close` fails every
waiting future with `ScorerError` and stops the worker: nothing is dropped silently.

Spawn re-imports the parent's ``__main__`` module in the worker, so a program using the scorer keeps its start-up
code under ``if __name__ == "__main__":`` (kefu's CLI and the benchmarks do).

Measured (``python -m bench.bench_service``, this 2-vCPU VM, medians of 7 runs, messages of 4 to 25 characters; two
runs, both sharing the CPUs with another session's test suite): 1.13-1.20 ms per message through the worker with
2,000 messages submitted at once (8 batches), against 1.07-1.30 ms for SnowNLP in the calling process, and 3.5 us
of the event loop's process CPU per message; 1.32-1.38 ms for one message at a time. A 1 ms ticker's worst
lateness while those 2,000 messages are scored: 5.8-6.0 ms (single windows from 3.2 to 26 ms), 99th percentile
0.40-0.75 ms; with nothing else running: 3.5-3.9 ms (2.4 to 7.3), 99th percentile 0.13-0.16 ms. Scored inline,
each message would hold the loop for its whole ~1.1 ms, and 2,000 submitted together for over 2 s.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

MAX_TEXT_CHARS = 500
"""Characters of a message scored. SnowNLP costs ~70 us per Chinese character here (500 characters: ~36 ms,
2,000: 140-300 ms of the worker for one message), and a message's opening carries its tone."""
NEUTRAL = 0.5
"""The score of a text with nothing to score (empty or whitespace), given without a round trip."""
STOP_GRACE = 2.0
"""Seconds a worker gets to exit after SIGTERM before it is killed."""


class ScorerError(Exception):
    """No score for this text: the worker died or the scorer was closed."""


# --- the worker process -------------------------------------------------------------------------------------


def _score_one(model: type, text: str) -> float:
    try:
        value = float(model(text).sentiments)
    except Exception:  # one odd text must not take the batch down; NaN marks it
        return math.nan
    return min(1.0, max(0.0, value))


def _worker_main(conn: Connection) -> None:
    """Load the model, say ready, then answer batches until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which then closes the scorer
    from snownlp import SnowNLP  # noqa: PLC0415 - only the worker pays for the model

    _score_one(SnowNLP, "你好")  # the first score loads the model files
    try:
        conn.send(os.getpid())
        while True:
            texts = conn.recv()
            conn.send([_score_one(SnowNLP, text) for text in texts])
    except (EOFError, OSError):  # the parent closed the pipe or died: nobody is waiting for scores
        return


class _Worker:
    """One worker process and the parent's end of its pipe. Blocking methods: call them from the I/O thread."""

    def __init__(self, context: SpawnContext) -> None:
        self.conn, child = context.Pipe()
        self.process: SpawnProcess = context.Process(
            target=_worker_main, args=(child,), name="kefu-sentiment", daemon=True
        )
        self.process.start()
        child.close()  # so that the worker's death reads as end-of-file here
        self.pid: int | None = None
        self._stopped = False
        self._stopping = threading.Lock()  # close() and a failed start may both stop this worker

    def wait_ready(self) -> None:
        """Wait for the worker to load its model."""
        self.pid = int(self._receive())  # type: ignore[call-overload]

    def round_trip(self, texts: list[str]) -> list[float]:
        """Score one batch."""
        try:
            self.conn.send(texts)
        except OSError as e:
            raise self._died() from e
        scores: list[float] = self._receive()  # type: ignore[assignment]
        return scores

    def _receive(self) -> object:
        try:
            return self.conn.recv()
        except (EOFError, OSError) as e:
            raise self._died() from e

    def _died(self) -> ScorerError:
        self.process.join(STOP_GRACE)
        return ScorerError(f"sentiment worker {self.process.pid} died (exit code {self.process.exitcode})")

    def stop(self) -> None:
        """Terminate (then kill) the process, reap it and release its pipe and handles; idempotent."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(STOP_GRACE)
                if self.process.is_alive():
                    self.process.kill()
            self.process.join()
            # Another thread may have reaped it first (a concurrent join in _died): its exit code is then unknown
            # here and close() would refuse; the process is gone either way.
            if self.process.exitcode is not None:
                self.process.close()
            self.conn.close()


# --- the scorer, on the event loop --------------------------------------------------------------------------


class SentimentScorer:
    """Sentiment in [0, 1] (0 negative, 1 positive) for visitor messages, off the event loop."""

    def __init__(
        self, *, max_pending: int = 10_000, batch_max: int = 256, on_start_failed: Callable[[str], None] | None = None
    ) -> None:
        self.max_pending = max_pending
        self._on_start_failed = on_start_failed
        """Told why, each time a worker fails to start (the texts waiting for it fail with ScorerError)."""
        self.batch_max = batch_max
        self._queue: deque[tuple[str, asyncio.Future[float]]] = deque()
        self._in_flight: list[asyncio.Future[float]] = []
        self._worker: _Worker | None = None
        self._workers: set[_Worker] = set()  # every process started and not yet stopped
        self._starting = asyncio.Lock()
        self._sender: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-sentiment-io")
        self._closed = False
        self._batches = 0

    @property
    def pending(self) -> int:
        """Texts waiting for a score: queued or in the worker."""
        return len(self._queue) + len(self._in_flight)

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id, None while no worker is ready."""
        return self._worker.pid if self._worker is not None else None

    @property
    def batches(self) -> int:
        """Batches the worker has answered (round trips)."""
        return self._batches

    async def start(self) -> None:
        """Start the worker and wait until its model is loaded."""
        await self._ensure_worker()

    def score(self, text: str) -> asyncio.Future[float] | None:
        """A future score for `text`, or None when `max_pending` texts are already waiting."""
        if self._closed:
            raise RuntimeError("sentiment scorer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        if not text.strip():
            future.set_result(NEUTRAL)
            return future
        if self.pending >= self.max_pending:
            return None
        self._queue.append((text[:MAX_TEXT_CHARS], future))
        if self._sender is None:
            self._sender = loop.create_task(self._send_batches(), name="kefu-sentiment-sender")
        return future

    async def close(self) -> None:
        """Fail every waiting future with ScorerError and stop the worker."""
        self._closed = True
        self._fail([future for _, future in self._queue] + self._in_flight, ScorerError("sentiment scorer closed"))
        self._queue.clear()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        self._worker = None
        loop = asyncio.get_running_loop()
        # Stopping the workers first unblocks the I/O thread if it waits on one's pipe; a worker it was still
        # starting is stopped once the thread is done.
        await loop.run_in_executor(None, self._stop_workers)
        await loop.run_in_executor(None, self._io.shutdown)
        await loop.run_in_executor(None, self._stop_workers)

    def _stop_workers(self) -> None:
        for worker in list(self._workers):
            worker.stop()
            self._workers.discard(worker)

    def _start_worker(self) -> _Worker:
        """Start a worker and wait for its model (I/O thread)."""
        worker = _Worker(multiprocessing.get_context("spawn"))
        self._workers.add(worker)
        try:
            worker.wait_ready()
        except BaseException:
            worker.stop()
            self._workers.discard(worker)
            raise
        return worker

    async def _ensure_worker(self) -> _Worker:
        async with self._starting:
            if self._worker is None:
                loop = asyncio.get_running_loop()
                try:
                    self._worker = await loop.run_in_executor(self._io, self._start_worker)
                except ScorerError:
                    raise
                except Exception as e:
                    raise ScorerError(f"sentiment worker failed to start: {e}") from e
            return self._worker

    async def _send_batches(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                try:
                    worker = await self._ensure_worker()
                except ScorerError as e:  # the worker could not start: fail what waits, retry on the next text
                    self._fail([future for _, future in self._queue], e)
                    self._queue.clear()
                    if self._on_start_failed is not None:
                        self._on_start_failed(str(e))
                    return
                batch = [self._queue.popleft() for _ in range(min(self.batch_max, len(self._queue)))]
                futures = self._in_flight = [future for _, future in batch]
                try:
                    scores = await loop.run_in_executor(self._io, worker.round_trip, [text for text, _ in batch])
                except ScorerError as e:
                    self._fail(futures, e)
                    self._worker = None
                    await loop.run_in_executor(self._io, self._retire, worker)
                    continue
                finally:
                    self._in_flight = []
                self._batches += 1
                for future, value in zip(futures, scores, strict=True):
                    if future.done():
                        continue
                    if math.isnan(value):
                        future.set_exception(ScorerError("snownlp could not score this text"))
                    else:
                        future.set_result(value)
        except BaseException as e:  # cancelled by close (the futures have failed already), or a bug
            self._fail(self._in_flight + [future for _, future in self._queue], ScorerError(f"scorer stopped: {e!r}"))
            raise
        finally:
            self._sender = None

    def _retire(self, worker: _Worker) -> None:
        worker.stop()
        self._workers.discard(worker)

    @staticmethod
    def _fail(futures: list[asyncio.Future[float]], error: ScorerError) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(error)
