"""Memory before authentication on the web port's WebSocket gateway (issue #13 point 1, spec sections 8 and 15.2).

N connections upgrade to /ws (subprotocol kefu.v1) and each sends one binary frame whose header declares BIG bytes,
then as much of its payload as the server takes (up to SEND bytes), and never a kefu byte of a handshake. Printed:
the growth of the server's resident memory (VmRSS summed over the server's processes, 3 s after the last connection
sent) per connection, and how many connections the server still held open. `--tree DIR` runs the `kefu serve` of
another checkout (a `git worktree` of an earlier commit) for a before/after comparison in the same session.

    .venv/bin/python bench/bench_ws_preauth.py --connections 200 --runs 3 [--tree /tmp/ws-before]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.kefu_bench.target import descendants
from bench.kefu_bench.target import rss_kb as process_rss_kb


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` and its descendants, in KiB."""
    return sum(process_rss_kb(p) for p in [pid, *descendants(pid)])


HERE = Path(__file__).resolve().parent


def one_run(tree: Path, connections: int, big: int, send: int) -> dict[str, float]:
    from kefu.server.runtime.launch import ServeProcess  # noqa: PLC0415

    sys.path.insert(0, str(HERE))
    from bench_hostile import namespace_dir  # noqa: PLC0415

    data = Path(tempfile.mkdtemp(prefix="kefu-ws-preauth-")) / "data"
    env = {"KEFU_SERVER_WORKERS": "0", "KEFU_LOG_LEVEL": "warning"}
    if tree.resolve() != HERE.parent:
        env["PYTHONPATH"] = namespace_dir(str(tree))
    server = ServeProcess(data, env=env)
    server.start()
    socks = []
    try:
        assert server.proc is not None
        time.sleep(2.0)
        before = rss_kb(server.proc.pid)
        payload = bytes(send)
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", server.web_port))
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.web_port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: kefu.v1\r\n\r\n".encode())  # fmt: skip
            assert s.recv(4096).startswith(b"HTTP/1.1 101")
            s.setblocking(False)
            sent = 0
            try:
                s.send(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", big) + os.urandom(4))
                while sent < send:
                    sent += s.send(payload[sent : sent + 65536])
            except (BlockingIOError, ConnectionError):
                pass
            socks.append(s)
        time.sleep(3.0)
        grown = rss_kb(server.proc.pid) - before
        still_open = 0
        for s in socks:
            try:
                still_open += s.recv(1) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
        return {"growth_mib": grown / 1024, "kib_per_connection": grown / connections, "still_open": still_open}
    finally:
        for s in socks:
            s.close()
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--big", type=int, default=1_000_000, help="the payload length each frame header declares")
    p.add_argument("--send", type=int, default=900_000, help="payload bytes each connection tries to send")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tree", type=Path, default=HERE.parent)
    args = p.parse_args()
    if args.runs > 1:  # each run in a process of its own, so that --tree's kefu is the one imported
        runs = []
        for _ in range(args.runs):
            argv = [sys.executable, __file__, "--runs", "1", "--connections", str(args.connections), "--big",
                    str(args.big), "--send", str(args.send), "--tree", str(args.tree)]  # fmt: skip
            import subprocess  # noqa: PLC0415

            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            runs.append(json.loads(out))
            print(out, flush=True)
        median = statistics.median(r["kib_per_connection"] for r in runs)
        print(json.dumps({"tree": str(args.tree), "connections": args.connections, "median_kib_per_connection": median,
                          "runs": runs}))  # fmt: skip
        return 0
    print(json.dumps(one_run(args.tree, args.connections, args.big, args.send)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
