"""Log lines a peer can cause, at a bounded rate: refused requests, and (`ThrottledLog`) any other such line.

A request the server refuses (a SEND, SYNC or service request answered with an error code, not a connection
ended) is logged at info as ``request.refused`` with the app, the request's frame type and the wire code::

    request.refused app=visitor-1 request=OPEN_CONVERSATION code=NOT_FOUND

and nothing else: no conversation id, no reason text, no message content (the reason a client is told is in the
reply, and the counts by code are `kefu_errors`). A peer can make refusals as fast as it can send frames, so the
lines are bounded per process: at most REFUSAL_LOG_BURST at once and REFUSAL_LOG_PER_S a second after that; the
refusals left out are counted in the next line written (``not_logged=N``) and all of them in `kefu_errors`.
"""

from __future__ import annotations

from collections.abc import Callable

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import Frame

from .. import log as logmod
from .ratelimit import TokenBucket

__all__ = ["REFUSAL_LOG_BURST", "REFUSAL_LOG_PER_S", "RefusalLog", "ThrottledLog"]

REFUSAL_LOG_BURST = 20
"""Lines written at once: enough for an operator following one client's mistakes line by line."""
REFUSAL_LOG_PER_S = 2.0
"""Lines a second past the burst: a flooding peer costs the journal about 170,000 short lines a day at most, per
process, and every refusal is still counted (here as not_logged, and in kefu_errors)."""


class ThrottledLog:
    """One kind of log line that a peer can cause as fast as it can send (a refusal, a failed login, a connection
    ended for bad input): at most `burst` lines at once and `per_s` a second after that, per process; the lines left
    out are counted in the next one written (``not_logged=N``). `clock` is a monotonic clock (the event loop's time);
    `emit(name, **fields)` writes a line."""

    def __init__(self, name: str, per_s: float, burst: float, clock: Callable[[], float], emit: Callable[..., None]):
        self.name = name
        self._clock = clock
        self._emit = emit
        self._bucket = TokenBucket(per_s, burst, clock())
        self._dropped = 0

    def __call__(self, **fields: object) -> None:
        """Write the line with `fields` if the rate allows; else count it for the next one."""
        if not self._bucket.take(1, self._clock()):
            self._dropped += 1
            return
        dropped, self._dropped = self._dropped, 0
        if dropped:
            fields["not_logged"] = dropped
        self._emit(self.name, **fields)


class RefusalLog:
    """Logs refused requests at info, rate-limited; `clock` is a monotonic clock (the event loop's time)."""

    def __init__(self, clock: Callable[[], float], emit: Callable[..., None] = logmod.event) -> None:
        self._line = ThrottledLog("request.refused", REFUSAL_LOG_PER_S, REFUSAL_LOG_BURST, clock, emit)

    def refused(self, app: str, request: Frame, code: ErrorCode) -> None:
        """`app`'s `request` was refused with `code`."""
        self._line(app=app, request=request.TYPE.name, code=ErrorCode(code).name)
