"""The Java client (clients/java/, issue #15): its build (JUnit tests, jar, javadoc, examples), the README's program,
then the same library against a real `kefu serve` together with the Python client: both suites, messages both ways
with the receiver offline (SYNC on connect), resumption with a ticket, a server restart with nothing acknowledged
lost, and the customer-service flow with the Java examples.

The Java side runs as subprocesses of `io.kefu.client.Interop` (clients/java/src/test/java), one scenario each,
reporting one line per event; one server serves the whole module (each test takes apps of its own).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kefu.client import Suite, new_conversation_id

from .conftest import JAVA_DIR, JavaBuild, KefuServer

JAVA_TIMEOUT_S = 60.0
SUITES = ["national", "international"]
EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"
BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_java_client.py"


def secret_text(secret: bytes) -> str:
    """The secret as `kefu app add` prints it."""
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def interop(
    build: JavaBuild, server: KefuServer, mode: str, app: str, *args: str, suite: str = "national"
) -> list[str]:
    """The command line of one Java scenario as `app`."""
    return [
        "java", "-cp", build.classpath, "io.kefu.client.Interop", mode, "--host", server.host, "--port",
        str(server.port), "--app", app, "--secret", secret_text(server.secrets[app]), "--pins", ",".join(server.pins),
        "--suite", suite, *args,
    ]  # fmt: skip


def run_java(cmd: list[str], timeout: float = JAVA_TIMEOUT_S) -> list[str]:
    """Run a Java scenario to its end; its stdout lines (fails with its output unless it exits 0)."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout.splitlines()


class Running:
    """A Java program running in the background, its stdout read line by line by a thread of its own (so that no line
    is lost in a pipe buffer between "wait for this line" and "read the rest"), its stderr kept."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._err: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            self._err.extend(self.proc.stderr)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # EOF marker, dropped by finish()
            self._changed.notify_all()

    def wait_for(self, prefix: str, timeout: float = JAVA_TIMEOUT_S) -> str:
        """The first line starting with `prefix` (fails if the program ends or is too slow)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: any(x.startswith(prefix) for x in self.lines) or bool(self.lines and self.lines[-1] == ""),
                timeout,
            )
            match = [x for x in self.lines if x.startswith(prefix)]
        assert ok and match, f"no line {prefix!r}: {self.lines[-20:]}\n{''.join(self._err)[-4000:]}"
        return match[0]

    def finish(self, timeout: float = JAVA_TIMEOUT_S) -> tuple[int, list[str], str]:
        """Wait for the end: (exit status, every stdout line, stderr)."""
        try:
            status = self.proc.wait(timeout)
        finally:
            self.proc.kill()
        with self._changed:
            self._changed.wait_for(lambda: bool(self.lines and self.lines[-1] == ""), 10)
            lines = [x for x in self.lines if x != ""]
        return status, lines, "".join(self._err)


def sent(lines: list[str]) -> list[int]:
    """The seqs of the receipts a `send` scenario printed (and no failed send; ERROR lines are what the client reported
    to its error callback, such as a reconnection attempt refused while the server restarts)."""
    assert not [line for line in lines if line.startswith("FAILED")], lines
    return [int(line.split()[2]) for line in lines if line.startswith("SENT ")]


def received(lines: list[str]) -> list[tuple[int, int, str, str]]:
    """(conversation, seq, sender, text) of each message a `receive` scenario printed."""
    found = []
    for line in lines:
        if line.startswith("RECV "):
            _, conv, seq, sender, _redelivery, text = line.split(" ", 5)
            found.append((int(conv), int(seq), sender, text))
    return found


async def python_receive(server: KefuServer, app: str, conv: int, count: int, suite: str) -> list[tuple[int, str]]:
    """(seq, text) of the next `count` messages of `conv` a Python client receives (connecting now)."""
    got: list[tuple[int, str]] = []
    async with server.client(app, suites=(Suite[suite.upper()],)) as client:
        async with asyncio.timeout(20):
            async for message in client.deliveries():
                if message.conversation_id == conv:
                    got.append((message.seq, message.text))
                    if len(got) == count:
                        break
    return got


async def python_send(server: KefuServer, app: str, conv: int, texts: list[str], suite: str) -> list[int]:
    """Send `texts` to `conv` from a Python client; their seqs."""
    async with server.client(app, suites=(Suite[suite.upper()],)) as client:
        return [(await client.send(conv, text)).seq for text in texts]


def test_build_unit_tests_jar_and_javadoc(java_build: JavaBuild) -> None:
    """build.sh compiled the library, its tests and the examples, every JUnit test passed, jar and javadoc exist."""
    found = re.search(r"\[\s*(\d+) tests successful\s*\]", java_build.output)
    failed = re.search(r"\[\s*(\d+) tests failed\s*\]", java_build.output)
    assert found and int(found.group(1)) > 0, java_build.output[-5000:]
    assert failed and int(failed.group(1)) == 0, java_build.output[-5000:]
    assert (java_build.build_dir / "kefu-client-0.1.0.jar").is_file()
    assert (java_build.build_dir / "javadoc" / "io" / "kefu" / "client" / "package-summary.html").is_file()
    assert (java_build.build_dir / "example-classes" / "Visitor.class").is_file()


def test_readme_program_compiles_as_written(java_build: JavaBuild, tmp_path: Path) -> None:
    """The complete program of clients/java/README.md compiles against the library, exactly as printed."""
    readme = (JAVA_DIR / "README.md").read_text()
    blocks = re.findall(r"```java\n(.*?)```", readme, flags=re.S)
    programs = [block for block in blocks if "public static void main" in block]
    assert programs, "no complete Java program in clients/java/README.md"
    name = re.search(r"public (?:final )?class (\w+)", programs[0])
    assert name is not None
    (tmp_path / f"{name.group(1)}.java").write_text(programs[0])
    cmd = ["javac", "-Xlint:all,-path", "-Werror", "-d", str(tmp_path), "-cp", java_build.classpath]
    source = tmp_path / f"{name.group(1)}.java"
    done = subprocess.run([*cmd, str(source)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("suite", SUITES)
def test_java_and_python_exchange_with_the_receiver_offline(
    java_build: JavaBuild, shared_kefu_server: KefuServer, suite: str
) -> None:
    """Java sends to an offline Python user, who gets everything by SYNC when it connects and replies; the Java user,
    offline meanwhile, then gets the replies: each once, in order, in both suites."""
    server = shared_kefu_server
    java_id, py_id = server.fresh_apps(2)
    conv, count = new_conversation_id(), 20
    lines = run_java(interop(java_build, server, "send", java_id, "--conv", str(conv), "--to", py_id, "--count",
                             str(count), "--prefix", "from-java", suite=suite))  # fmt: skip
    assert lines[0] == f"CONNECTED resumed=false suite={suite}"
    assert sent(lines) == list(range(1, count + 1))
    assert not [line for line in lines if line.startswith("ERROR")], lines
    got = asyncio.run(python_receive(server, py_id, conv, count, suite))
    assert got == [(seq, f"from-java {seq - 1}") for seq in range(1, count + 1)]
    seqs = asyncio.run(python_send(server, py_id, conv, [f"from-python {i}" for i in range(count)], suite))
    assert seqs == list(range(count + 1, 2 * count + 1))
    lines = run_java(interop(java_build, server, "receive", java_id, "--count", str(count), "--timeout", "20",
                             suite=suite))  # fmt: skip
    assert received(lines) == [(conv, count + 1 + i, py_id, f"from-python {i}") for i in range(count)]
    assert lines[-1] == f"DONE {count}"


def test_resumption_with_a_ticket(java_build: JavaBuild, shared_kefu_server: KefuServer) -> None:
    """After a full handshake the client holds a ticket; when its connection drops it reconnects by itself and resumes
    the session with it (no signature), and sending goes on."""
    server = shared_kefu_server
    java_id, py_id = server.fresh_apps(2)
    conv = new_conversation_id()
    lines = run_java(interop(java_build, server, "resume", java_id, "--conv", str(conv), "--to", py_id))
    expected = ["CONNECTED resumed=false suite=national", "TICKET true", "RECONNECTED resumed=true reconnects=1"]
    assert lines[:3] == expected
    assert sent(lines) == [1]
    assert asyncio.run(python_receive(server, py_id, conv, 1, "national")) == [(1, "after resumption")]


def test_server_restart_loses_nothing_acknowledged(java_build: JavaBuild, shared_kefu_server: KefuServer) -> None:
    """A Java sender streams while the server is stopped (GOAWAY, drain) and started again: every send completes with
    a receipt (retried with its client_msg_id after the reconnect), and a Java receiver then gets each message once,
    in order, with the seqs the receipts named."""
    server = shared_kefu_server
    sender, receiver = server.fresh_apps(2)
    conv, count = new_conversation_id(), 300
    cmd = interop(java_build, server, "send", sender, "--conv", str(conv), "--to", receiver, "--count", str(count),
                  "--window", "4")  # fmt: skip
    running = Running(cmd)
    running.wait_for("SENT 30 ")  # restart once the stream is under way
    server.stop()
    server.start()
    status, lines, err = running.finish()
    assert status == 0, f"{lines[-20:]}\n{err[-4000:]}"
    assert sent(lines) == list(range(1, count + 1)), lines[-20:]
    lines = run_java(interop(java_build, server, "receive", receiver, "--count", str(count), "--timeout", "20"))
    assert [(c, seq) for c, seq, _, _ in received(lines)] == [(conv, seq) for seq in range(1, count + 1)]


def add_service_app(server: KefuServer, name: str, role: str, tenant: str) -> str:
    """Register an app with a role in a tenant of its own (so that other tests' agents cannot take its visitors)."""
    done = server.cli("app", "add", name, "--role", role, "--tenant", tenant)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 0 and lines, done.stderr
    server.secrets[name] = base64.urlsafe_b64decode(lines[-1].strip() + "=" * (-len(lines[-1].strip()) % 4))
    return name


@pytest.mark.parametrize("visitor_language", ["java", "python"])
def test_customer_service_flow_with_the_java_agent(
    java_build: JavaBuild, shared_kefu_server: KefuServer, visitor_language: str, tmp_path: Path
) -> None:
    """The README's customer-service flow: the Java example agent goes online at the desk, a visitor (the Java example,
    or the Python one) opens a service conversation with its first message, is routed to the agent and gets its
    reply."""
    server = shared_kefu_server
    tag = f"{visitor_language}{time.monotonic_ns() % 10**9}"
    agent = add_service_app(server, f"agent-{tag}", "agent", f"bank-{tag}")
    visitor = add_service_app(server, f"visitor-{tag}", "visitor", f"bank-{tag}")
    pins = tmp_path / "pins.txt"
    pins.write_text("\n".join(server.pins) + "\n")
    common = ["--host", server.host, "--port", str(server.port), "--pins-file", str(pins)]
    agent_cmd = ["java", "-cp", java_build.classpath, "Agent", *common, "--app-id", agent,
                 f"--secret={secret_text(server.secrets[agent])}", "--service", "--count", "1",
                 "--timeout", "30"]  # fmt: skip
    running = Running(agent_cmd)
    running.wait_for("agent: ready (national)")
    words = "我的卡丢了"
    if visitor_language == "java":
        visitor_cmd = ["java", "-cp", java_build.classpath, "Visitor"]
    else:
        visitor_cmd = [sys.executable, str(EXAMPLES / "visitor.py")]
    # --secret=...: a secret may start with "-" (1 in 64 do), which argparse would take for an option
    visitor_cmd += [*common, "--app-id", visitor, f"--secret={secret_text(server.secrets[visitor])}", "--service",
                    "--timeout", "30", words]  # fmt: skip
    done = subprocess.run(visitor_cmd, capture_output=True, text=True, timeout=JAVA_TIMEOUT_S, check=False)
    status, agent_lines, err = running.finish()
    out = "\n".join(agent_lines)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"in general: agent {agent}" in done.stdout
    assert f"visitor: {agent} replied: 您好 {visitor}，已收到：{words}" in done.stdout
    assert status == 0, out + err
    assert f"agent: {visitor} says: {words}" in out


def test_the_benchmark_runs_both_clients(java_build: JavaBuild, tmp_path: Path) -> None:
    """bench/bench_java_client.py end to end at a tiny size (its numbers are never asserted: machines vary): every
    mode of both clients runs against its own server and is reported with the targets."""
    out = tmp_path / "java_client.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "1", "--messages", "300", "--window", "50", "--handshakes", "3",
         "--java-build", str(java_build.build_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads(out.read_text())
    modes = {f"{language}.{mode}" for language in ("java", "python") for mode in ("full", "resumed", "messages")}
    assert set(report["results"]) == modes
    for result in report["results"].values():
        assert result["ops_per_s_median"] > 0 and result["cpu_us_per_op_median"] >= 0
    assert set(report["targets"]) == {"java_acked_messages_per_s", "java_cpu_per_message_below_python"}
    assert "acked msgs/s" in done.stdout
