"""A stand-in supervisor for tests/server/test_zygote.py, run as a script: a process with no thread, as `kefu serve`
is when it forks its zygote. It starts the zygote (whose `prepare` draws from every random source first, as the
imports of the workers' code may), forks probes that report what they inherited, and prints one JSON object.

Usage: python zygote_probe.py OUT_DIR
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kefu.protocol import _openssl
from kefu.server.runtime import zygote

_UPPER = bytes.fromhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122")  # n - 1 of curveSM2


def _draw() -> dict[str, object]:
    return {
        "scalar": _openssl.random_scalar(_UPPER).hex(),
        "x25519": X25519PrivateKey.generate().private_bytes_raw().hex(),
        "random": random.getrandbits(64),
    }


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def probe(argv: list[str]) -> int:
    """A forked probe: writes what it sees to argv[0], then does what argv[1] says."""
    out, mode, fd = Path(argv[0]), argv[1], int(argv[2])
    report = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "comm": Path("/proc/self/comm").read_text().strip(),
        "fds": [n for n in range(3, 1024) if _is_open(n)],
        "stdin": os.readlink("/proc/self/fd/0"),
        "env": os.environ.get("KEFU_PROBE"),
        "passed": os.read(fd, 100).decode(),
        **_draw(),
    }
    out.write_text(json.dumps(report))
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "orphan":  # a child of its own that outlives it (as a killed core's indexer does)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    return 3


def _late_answer(out: Path) -> dict[str, object]:
    """A zygote that answers after ANSWER_TIMEOUT_S (its `prepare` is slow): the spawn fails, and the process it
    forks late exits without running the probe (which would write `late.json`)."""
    slow = zygote.start(lambda: time.sleep(zygote.ANSWER_TIMEOUT_S + 0.3), b"kefu-slow-zygote")
    assert slow is not None
    read_end, write_end = os.pipe()
    target = 50
    os.dup2(read_end, target)
    try:
        slow.spawn([str(out / "late.json"), "exit", str(target)], [target], "kefu-probe-late", entry="__main__:probe")
        spawned = "forked"
    except OSError as exc:
        spawned = f"refused: {exc}"
    for fd in (read_end, write_end, target):
        os.close(fd)
    slow.close()  # as the Spawner does after a failed fork: the zygote still forks what it had read
    late: list[int] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the late process, adopted here, is reaped as a stray
        time.sleep(0.1)
        late += zygote.reap_strays(set())
    return {"spawn": spawned, "probe_ran": (out / "late.json").exists(), "late_reaped": late}


def main() -> None:
    out = Path(sys.argv[1])
    forker = zygote.start(_draw)
    assert forker is not None
    os.environ["KEFU_PROBE"] = "set after the zygote started"
    result: dict[str, object] = {"supervisor": os.getpid(), "zygote": forker.pid, "probes": []}
    codes = []
    strays: list[int] = []
    for n, mode in enumerate(["exit", "kill", "orphan"]):
        read_end, write_end = os.pipe()
        os.write(write_end, f"descriptor of probe {n}".encode())
        target = 40 + n  # a number the probe must find it at, whatever the zygote received it as
        os.dup2(read_end, target)
        forked = forker.spawn([str(out / f"{n}.json"), mode, str(target)], [target], f"kefu-probe-{n}",
                              entry="__main__:probe")  # fmt: skip
        for fd in (read_end, write_end, target):
            os.close(fd)
        codes.append(forked.wait(10))
    try:
        forker.spawn(["x"], list(range(zygote.MAX_FDS + 1)), "kefu-probe-x", entry="__main__:probe")
        result["too_many_fds"] = "forked"
    except ValueError:
        result["too_many_fds"] = "refused"
    deadline = time.monotonic() + 5
    while not strays and time.monotonic() < deadline:
        time.sleep(0.1)
        strays = zygote.reap_strays({forker.pid})
    result["codes"] = codes
    result["strays"] = strays
    result["late"] = _late_answer(out)
    result["probes"] = [json.loads((out / f"{n}.json").read_text()) for n in range(3)]
    forker.close()
    result["zygote_reaped"] = not Path(f"/proc/{forker.pid}").exists()
    result["parent_draw"] = _draw()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
