"""`kefu serve` as a subprocess: start it, wait until it says it listens, watch its processes, stop it by PID.

For whatever runs a real server from outside (the test suite, the load harness, an operator's script). The server
prints ``kefu: listening on HOST:PORT`` once every worker is ready (``kefu: web on http://HOST:PORT/`` before it when
the web port is on), then ``kefu: metrics on http://HOST:PORT/metrics`` (when metrics are on); `start` returns after
the last of these, with the ports known. The rest of the server's standard output keeps being read (so that it can
never block on a full pipe) and kept in `stdout`; its standard error goes to a log file.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["START_TIMEOUT_S", "ServeProcess", "descendants"]

START_TIMEOUT_S = 60.0
"""How long `start` waits for the listening line (the core loads the store and the desk; gateways join it)."""
_LISTENING = re.compile(r"kefu: listening on \[?([\w.:]+?)\]?:(\d+)$")
_WEB = re.compile(r"kefu: web on http://\[?[\w.:]+?\]?:(\d+)/")
_API = re.compile(r"kefu: api on http://\[?[\w.:]+?\]?:(\d+)$")
_METRICS = re.compile(r"kefu: metrics on http://\[?[\w.:]+?\]?:(\d+)/metrics")


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (read from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children.get(child, [])
    return out


class ServeProcess:
    """One `kefu serve` subprocess on a data directory."""

    def __init__(
        self,
        data_dir: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int = 0,
        metrics_port: int = 0,
        api_port: int = 0,
        web_port: int = 0,
        log_path: Path | None = None,
    ) -> None:
        """`args`: more `kefu serve` flags; `env`: added to this process's environment; port 0: any free one (the
        web port's too, unless `args` names one)."""
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.port = port
        self.metrics_port = metrics_port
        self.api_port = api_port
        """The HTTP API's port ([api] port, 0: any free one unless `args` names one): known after `start` when the
        server serves it (``kefu: api on http://HOST:PORT``, printed before the listening line)."""
        self.web_port = web_port
        """The web port ([web] port): known after `start` when the server serves it."""
        self.host = ""
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout: list[str] = []
        """Every line the server printed, across starts."""
        self.starts = 0

    def command(self) -> list[str]:
        """The `kefu serve` command line."""
        api = [] if "--api-port" in self.args else ["--api-port", str(self.api_port)]
        web = [] if "--web-port" in self.args else ["--web-port", str(self.web_port)]
        return [sys.executable, "-m", "kefu.server.cli", "serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--metrics-port", str(self.metrics_port), *web, *api, *self.args]  # fmt: skip

    def start(
        self, *, prefix: Sequence[str] = (), pass_fds: Sequence[int] = (), timeout: float = START_TIMEOUT_S
    ) -> ServeProcess:
        """Start and wait until it listens (and serves metrics, unless they are off); RuntimeError with the end of
        its log if it exits or is too slow. `prefix`: a wrapper command (e.g. one that passes a socket as systemd
        does, with `pass_fds`). A restart keeps the port it had."""
        assert not self.alive, "already running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own command line
                [*prefix, *self.command()], stdout=subprocess.PIPE, stderr=log, env=self.env, pass_fds=tuple(pass_fds)
            )
        self.starts += 1
        ready, ended = threading.Event(), threading.Event()
        threading.Thread(target=self._read, args=(self.proc, ready, ended), daemon=True).start()
        if not ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"kefu serve did not start in {timeout:g} s: {self.log_tail()}")
        if ended.is_set() or not self.alive:  # its stdout closed: it is exiting, even if not yet reaped
            self.wait(10)
            raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log_tail()}")
        return self

    def _read(self, proc: subprocess.Popen[bytes], ready: threading.Event, ended: threading.Event) -> None:
        assert proc.stdout is not None
        metrics_off = "--no-metrics" in self.args or self.env.get("KEFU_METRICS_ENABLED", "").lower() in ("0", "false")
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stdout.append(line)
            if m := _API.search(line):
                self.api_port = int(m.group(1))
            elif m := _WEB.search(line):
                self.web_port = int(m.group(1))
            elif m := _LISTENING.search(line):
                self.host, self.port = m.group(1), int(m.group(2))
                if metrics_off:
                    ready.set()
            elif m := _METRICS.search(line):
                self.metrics_port = int(m.group(1))
                ready.set()
        proc.stdout.close()
        if not ready.is_set():
            ended.set()
        ready.set()  # the server exited: `start` reports it

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log (its standard error)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        """The server's (the supervisor's) PID."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """The process runs."""
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[int]:
        """Every process of the server: itself and its workers (and theirs, such as the sentiment scorer)."""
        return [self.pid, *descendants(self.pid)] if self.alive else []

    def workers(self) -> dict[str, int]:
        """The worker processes by name ("core", "gateway-0", ...): a worker forked by the zygote is named so
        (``kefu-core``, `kefu.server.runtime.zygote`), one started as a subprocess says it in its command line."""
        found: dict[str, int] = {}
        for pid in descendants(self.pid) if self.alive else []:
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if comm == "kefu-core" or comm.startswith("kefu-gateway-"):
                found[comm.removeprefix("kefu-")] = pid
                continue
            if b"kefu.server.runtime.worker" not in argv:
                continue
            role = next((a.decode() for a in argv if a in (b"core", b"gateway")), "")
            index = argv[argv.index(b"--index") + 1].decode() if b"--index" in argv else "0"
            found[role if role == "core" else f"gateway-{index}"] = pid
        return found

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the server (its PID), if it runs."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the server to exit; its status."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal (SIGTERM: a graceful drain) and wait; its exit status."""
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server and every process of it that is left (by PID), and wait."""
        if self.proc is None:
            return
        pids = self.processes()
        for pid in reversed(pids):  # the workers first, then the supervisor (which would otherwise stop them itself)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_exists(pid) for pid in pids[1:]) and time.monotonic() < deadline:
            time.sleep(0.02)


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
