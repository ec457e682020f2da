"""A child process killed mid-load: what it printed before SIGKILL, for the kill -9 tests of the store."""

from __future__ import annotations

import random
import signal
import subprocess
import time


def lines_until_killed(argv: list[str], seconds: float, max_lines: int) -> list[str]:
    """Run `argv`, read its output lines for about `seconds` (at most `max_lines`), SIGKILL it at a random moment
    just after, and return every line it printed, the one the kill cut (no newline) included."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        lines = [child.stdout.readline()]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(lines) < max_lines:
            lines.append(child.stdout.readline())
        time.sleep(random.uniform(0, 0.02))
        child.send_signal(signal.SIGKILL)
        lines += child.stdout.read().splitlines(keepends=True)
    assert child.returncode == -signal.SIGKILL
    return lines
