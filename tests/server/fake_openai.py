"""A fake OpenAI-compatible chat-completions endpoint: real HTTP on 127.0.0.1, an OS-chosen port.

    with FakeOpenAI(reply("您好，请问有什么可以帮您？")) as fake:
        options = {"endpoint": fake.url, "model": "qwen2-7b"}      # fake.url is "http://127.0.0.1:PORT/v1"
        ...
        fake.requests[0].json["messages"]

It serves POST {url}/chat/completions and GET {url}/models. The answer comes from `fake.behaviour`, a function of
the recorded request returning a `Response`; helpers build the usual ones: `reply(text)`, `echo(prefix)`,
`computed(fn)`, `delayed(seconds, then)`, `status(500)`, `malformed()`, `json_body(obj)`. Assign `fake.behaviour`
to change it mid-test. Every request is recorded (path, lower-cased headers, raw body, parsed JSON).

Theory of operation: a ThreadingHTTPServer runs `serve_forever` on a daemon thread, one daemon thread per request
(HTTP/1.0: one request per connection, so no handler thread lingers on a kept-alive socket). A delay waits on the
server's stop event, so leaving the `with` block ends every delay at once; writing to a client that gave up (the
plugin timed out) is ignored. `__exit__` sets the event, shuts the server down and joins its thread, each step
bounded. Usable from any test, including one that runs the kefu server as a subprocess pointed at `fake.url`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "Behaviour",
    "FakeOpenAI",
    "RecordedRequest",
    "Response",
    "completion",
    "computed",
    "delayed",
    "echo",
    "json_body",
    "malformed",
    "reply",
    "status",
]

MAX_REQUEST_BYTES = 16 << 20
"""A request body larger than this is refused with 413: a test never needs more, and a bug must not eat memory."""
STOP_TIMEOUT_S = 5.0
"""Bound on joining the server thread at exit (it polls for shutdown every POLL_INTERVAL_S)."""
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # the parsed body, or None when it was not JSON


@dataclass(frozen=True, slots=True)
class Response:
    """What to answer: a status, a body (bytes as is, anything else as JSON) and a delay before answering."""

    status: int = 200
    body: Any = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str = "application/json"


Behaviour = Callable[[RecordedRequest], Response]


def completion(content: str, *, model: str = "fake", finish_reason: str = "stop") -> dict[str, Any]:
    """A chat-completions response document with one choice."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def computed(fn: Callable[[RecordedRequest], str], *, finish_reason: str = "stop") -> Behaviour:
    """Answer with the content `fn(request)`."""

    def behaviour(request: RecordedRequest) -> Response:
        model = request.json.get("model", "fake") if isinstance(request.json, dict) else "fake"
        return Response(body=completion(fn(request), model=model, finish_reason=finish_reason))

    return behaviour


def reply(content: str, *, finish_reason: str = "stop") -> Behaviour:
    """Always answer `content`."""
    return computed(lambda _: content, finish_reason=finish_reason)


def echo(prefix: str = "echo: ") -> Behaviour:
    """Answer `prefix` + the content of the last "user" message."""

    def last_user(request: RecordedRequest) -> str:
        users = [m["content"] for m in request.json["messages"] if m.get("role") == "user"]
        return prefix + (users[-1] if users else "")

    return computed(last_user)


def delayed(seconds: float, then: Behaviour) -> Behaviour:
    """Answer as `then` does, after `seconds` (cut short when the fake stops)."""

    def behaviour(request: RecordedRequest) -> Response:
        response = then(request)
        return Response(response.status, response.body, seconds, response.content_type)

    return behaviour


def status(code: int, body: Any = None) -> Behaviour:
    """Answer HTTP `code` with an OpenAI-style error document (or `body`)."""
    document = {"error": {"message": "fake failure", "type": "server_error", "code": code}} if body is None else body
    return lambda _: Response(code, document)


def malformed(body: bytes = b'{"choices": [{"message": {"content": "unterminated') -> Behaviour:
    """Answer 200 with a body that is not valid JSON."""
    return lambda _: Response(200, body)


def json_body(document: Any) -> Behaviour:
    """Answer 200 with `document` as JSON, whatever its shape (e.g. missing fields)."""
    return lambda _: Response(200, document)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a plugin that timed out) is expected; nothing to print."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `fake.requests` instead."""

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.rstrip("/") == f"{fake.base_path}/models":
            self._send(Response(body={"object": "list", "data": [{"id": "fake", "object": "model"}]}))
        else:
            self._send(Response(404, {"error": {"message": "not found"}}))

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._send(Response(413, {"error": {"message": "too large"}}))
            return
        body = self.rfile.read(length)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        request = RecordedRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, parsed)
        fake._record(request)
        if self.path != f"{fake.base_path}/chat/completions":
            self._send(Response(404, {"error": {"message": "not found"}}))
            return
        response = fake.behaviour(request)
        if response.delay_s > 0 and fake._stopping.wait(response.delay_s):
            return  # the fake is stopping: drop the connection rather than answer late
        self._send(response)

    def _send(self, response: Response) -> None:
        body = response.body if isinstance(response.body, bytes) else json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("content-type", response.content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeOpenAI:
    """The fake endpoint; a context manager. `url` is the base URL to configure ("http://127.0.0.1:PORT/v1")."""

    def __init__(self, behaviour: Behaviour | None = None, *, base_path: str = "/v1") -> None:
        self.behaviour: Behaviour = behaviour or reply("fake reply")
        self.base_path = base_path
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not running"
        return f"http://127.0.0.1:{self._server.server_port}{self.base_path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL_S,), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
