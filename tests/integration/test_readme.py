"""README.md and the client examples, run as written against a real `kefu serve`.

Every fenced ```sh, ```python and ```toml block of README.md runs, in order, in one temporary directory (the
"checkout"); then the commands in the docstrings of clients/python/examples run there too. A block that fails fails
the test with its line number and output. What is not run literally is this mapping, all of it:

- The checkout holds `.venv` (a link to the environment running the tests) and `clients` (a link to this
  repository's), and the server's data directory is `data/` in it, so `.venv/bin/kefu ...`, `data/keys/pins.txt` and
  `clients/python/examples/...` work as written.
- A sh block runs command by command (a line, or each part of a line joined by `&&`), each with `sh -ec`, except
  `python3 -m venv .venv`, `.venv/bin/pip install ...` and `.venv/bin/pytest` (SKIPPED: the environment is the one
  running this, and the suite is this one), and `[VAR=value ...] .venv/bin/kefu serve [FLAGS]`, which (re)starts the
  test's server with those variables and flags on free ports (`kefu.server.runtime.launch`).
- A python block runs as a script with `.venv/bin/python`; in it `7420` (the default port) becomes the server's port
  (and `7422`, `7423`, the web port's and the HTTP API's, become theirs), and a line
  ``NAME = "..."  # what `kefu app add APP ...` printed`` gets the secret that command printed earlier.
- A toml block is written to the file its first line names (``# data/service.toml``).
- In an example's command, `7420` becomes the server's port and `$..._SECRET` is the secret of its `--app-id`.
"""

from __future__ import annotations

import ast
import base64
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kefu.client import Client, RequestRefused
from kefu.protocol.errors import ErrorCode
from kefu.server.runtime.launch import ServeProcess, descendants

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "clients" / "python" / "examples"
BLOCK_TIMEOUT_S = 60.0
"""A block is a few commands or one short program; a minute means it hangs."""

SKIPPED = (
    re.compile(r"python3 -m venv \.venv"),
    re.compile(r"\.venv/bin/pip install .*"),
    re.compile(r"\.venv/bin/pytest"),
)
SERVE = re.compile(r"((?:\w+=\S+\s+)*)\.venv/bin/kefu serve(.*)")
SECRET_LINE = re.compile(r'^(\w+) = "\.\.\."  # what `kefu app add ([\w.-]+)[^`]*` printed$', re.MULTILINE)
PRINTED_SECRET = re.compile(r"kefu: app '([^']+)' created[^\n]*\n(\S+)$", re.MULTILINE)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A fenced block of README.md: its language, the line of its opening fence, its text."""

    lang: str
    line: int
    text: str


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md, in order."""
    text = README.read_text(encoding="utf-8")
    return [Block(m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)]


def is_sentiment_worker(pid: int) -> bool:
    """Whether `pid` is a multiprocessing "spawn" child (the server's only one is the sentiment scorer)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class Checkout:
    """The directory the README's commands run in, and the server they start."""

    path: Path
    server: ServeProcess | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    """What each `kefu app add APP` printed, by app id."""
    sentiment_workers_before_service: list[int] | None = None
    """The sentiment workers running just before the first block that asks for service (None: not reached)."""

    @property
    def port(self) -> int:
        assert self.server is not None, "no `kefu serve` block ran before this one"
        return self.server.port

    def run(self, block: Block) -> None:
        """Run one block as the module docstring says; AssertionError naming its line if it fails."""
        match block.lang:
            case "sh":
                for command in (part.strip() for line in block.text.splitlines() for part in line.split(" && ")):
                    if command and not command.startswith("#"):
                        self.sh(command, block)
            case "python":
                if self.sentiment_workers_before_service is None and "service.open" in block.text:
                    self.sentiment_workers_before_service = self.sentiment_workers()
                self.python(block)
            case "toml":
                first, _, _ = block.text.partition("\n")
                assert first.startswith("# "), f"README line {block.line}: a toml block's first line names its file"
                (self.path / first[2:].strip()).write_text(block.text, encoding="utf-8")
            case _:
                raise AssertionError(f"README line {block.line}: no way to run a ```{block.lang} block")

    def sh(self, command: str, block: Block) -> None:
        if any(pattern.fullmatch(command) for pattern in SKIPPED):
            return
        if serve := SERVE.fullmatch(command):
            self.serve(dict(v.split("=", 1) for v in serve.group(1).split()), shlex.split(serve.group(2)))
            return
        done = subprocess.run(
            ["sh", "-ec", command], check=False, cwd=self.path, capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT_S,
        )  # fmt: skip
        output = done.stderr + done.stdout  # a secret is printed (stdout) after the line announcing it (stderr)
        assert done.returncode == 0, f"README line {block.line}: `{command}` exited {done.returncode}:\n{output}"
        self.secrets.update(PRINTED_SECRET.findall(output))

    def python(self, block: Block) -> None:
        def secret(m: re.Match[str]) -> str:
            assert m.group(2) in self.secrets, f"README line {block.line}: no `kefu app add {m.group(2)}` ran before"
            return f'{m.group(1)} = "{self.secrets[m.group(2)]}"'

        script = self.path / f"readme_line_{block.line}.py"
        assert self.server is not None, "no `kefu serve` block ran before this one"
        ports = {"7420": self.port, "7422": self.server.web_port, "7423": self.server.api_port}
        text = re.sub(r"\b(742[023])\b", lambda m: str(ports[m.group(1)]), block.text)
        script.write_text(SECRET_LINE.sub(secret, text), encoding="utf-8")
        done = subprocess.run(
            [".venv/bin/python", script.name], check=False, cwd=self.path, capture_output=True, text=True,
            timeout=BLOCK_TIMEOUT_S,
        )  # fmt: skip
        assert done.returncode == 0, f"README line {block.line} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        print(f"README line {block.line} printed:\n{done.stdout}")  # shown with -s, or when a later block fails

    def serve(self, env: dict[str, str], args: list[str]) -> None:
        """`kefu serve`: stop the running server (SIGTERM, as Ctrl-C would) and start one with `env` and `args`."""
        if self.server is not None:
            self.server.stop()
        self.server = ServeProcess(self.path / "data", args=args, env=env, log_path=self.path / "server.log")
        self.server.start()

    def sentiment_workers(self) -> list[int]:
        assert self.server is not None
        return [pid for pid in descendants(self.server.pid) if is_sentiment_worker(pid)]

    def example_command(self, script: str) -> tuple[list[str], dict[str, str]]:
        """The command an example's docstring gives (its `::` block, run by sh), and the environment it needs."""
        doc = ast.get_docstring(ast.parse((EXAMPLES / script).read_text(encoding="utf-8"))) or ""
        command = textwrap.dedent(doc.split("::\n", 1)[1].lstrip("\n").split("\n\n", 1)[0])
        command = command.replace("7420", str(self.port))
        argv = shlex.split(command.replace("\\\n", " "), posix=True)
        secret = self.secrets[argv[argv.index("--app-id") + 1]]
        names = re.findall(r"\$(\w+_SECRET)", command)
        return ["sh", "-ec", command], {**os.environ, **dict.fromkeys(names, secret)}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    """The README run once for the module: the tests below read what it did."""
    path = tmp_path_factory.mktemp("checkout")
    (path / ".venv").symlink_to(Path(sys.prefix))
    (path / "clients").symlink_to(ROOT / "clients")
    run = Checkout(path)
    try:
        yield run
    finally:
        if run.server is not None:
            run.server.kill()


def test_every_readme_block_runs_as_written(checkout: Checkout) -> None:
    blocks = readme_blocks()
    assert {b.lang for b in blocks} <= {"sh", "python", "toml"}, "a block this test cannot run"
    for block in blocks:
        checkout.run(block)
    assert {"alice", "visitor-1", "agent-7", "lead-1"} <= set(checkout.secrets)


def test_the_sentiment_worker_starts_on_first_use(checkout: Checkout) -> None:
    if checkout.sentiment_workers_before_service is None:
        pytest.skip("the README did not run")
    assert checkout.sentiment_workers_before_service == [], "no service conversation yet: no SnowNLP worker"
    deadline = time.monotonic() + 10
    while not checkout.sentiment_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(checkout.sentiment_workers()) == 1, "the README's visitors' first messages started it"


def test_the_examples_run_as_their_docstrings_say(checkout: Checkout) -> None:
    if "agent-7" not in checkout.secrets:
        pytest.skip("the README did not run")
    argv, env = checkout.example_command("agent.py")
    agent = subprocess.Popen(
        argv, cwd=checkout.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert agent.stdout is not None
        ready = agent.stdout.readline()  # the agent's first line, or "" if it exited (its --timeout bounds this)
        assert ready.startswith("agent: ready"), ready
        argv, env = checkout.example_command("visitor.py")
        visitor = subprocess.run(
            argv, check=False, cwd=checkout.path, env=env, capture_output=True, text=True, timeout=60
        )
        assert visitor.returncode == 0, visitor.stdout + visitor.stderr
        assert "visitor: agent-7 replied: 您好 visitor-1" in visitor.stdout
        out, err = agent.communicate(timeout=30)
        assert agent.returncode == 0, ready + out + err
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.communicate()


@pytest.mark.asyncio
async def test_a_refused_request_is_logged_with_its_app_type_and_code(checkout: Checkout) -> None:
    if "visitor-1" not in checkout.secrets or checkout.server is None:
        pytest.skip("the README did not run")
    secret = checkout.secrets["visitor-1"]
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    pins = (checkout.path / "data" / "keys" / "pins.txt").read_text().split()
    async with Client("127.0.0.1", checkout.port, app_id="visitor-1", app_secret=key, server_pins=pins) as visitor:
        with pytest.raises(RequestRefused) as refused:
            await visitor.service.open(group="no-such-group", first_message="secret words")
    assert refused.value.code == ErrorCode.NOT_FOUND
    log = checkout.server.log_path.read_text()
    lines = [line for line in log.splitlines() if "request.refused" in line]
    assert any("app=visitor-1 request=OPEN_CONVERSATION code=NOT_FOUND" in line for line in lines), lines
    assert "secret words" not in log and "no-such-group" not in log
