"""The zygote (`kefu.server.runtime.zygote`): processes forked from it get their descriptors at the numbers given,
/dev/null as input, the environment of the request, their name; they are adopted by the supervisor, which waits for
them (an exit status, a signal) and reaps their orphans; and no two of them, nor the supervisor, draw the same
random numbers (SM2 nonces and keys through OpenSSL, X25519 keys, Python's `random`). Run in a process of its own
(tests/server/zygote_probe.py), since the zygote is forked from a process without threads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE = Path(__file__).with_name("zygote_probe.py")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("zygote")
    run = subprocess.run(
        [sys.executable, str(PROBE), str(out)], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    found: dict[str, Any] = json.loads(run.stdout)
    return found


def test_a_forked_process_gets_its_descriptors_input_environment_and_name(result: dict[str, Any]) -> None:
    for n, probe in enumerate(result["probes"]):
        assert probe["comm"] == f"kefu-probe-{n}"
        assert probe["fds"] == [40 + n], "the given descriptor, at its number, and no other above 2"
        assert probe["passed"] == f"descriptor of probe {n}"
        assert probe["stdin"] == "/dev/null"
        assert probe["env"] == "set after the zygote started", "the environment of the request, not of the fork"


def test_the_supervisor_waits_for_what_the_zygote_forked_and_reaps_their_orphans(result: dict[str, Any]) -> None:
    assert result["codes"] == [3, -9, 3], "its exit status, and the signal that killed it, as for a subprocess"
    assert len(result["strays"]) == 1, "the orphaned child of the third probe, adopted and reaped"
    assert result["zygote_reaped"], "the zygote ends when the supervisor closes its end"
    assert result["too_many_fds"] == "refused", "more descriptors than a request carries: refused, not truncated"


def test_no_two_forked_processes_draw_the_same_random_numbers(result: dict[str, Any]) -> None:
    draws = [*result["probes"], result["parent_draw"]]
    for source in ("scalar", "x25519", "random"):
        values = [draw[source] for draw in draws]
        assert len(set(values)) == len(values), f"{source}: {values}"


def test_a_process_forked_after_the_supervisor_gave_up_waiting_never_runs(result: dict[str, Any]) -> None:
    late = result["late"]
    assert late["spawn"].startswith("refused"), "no answer within ANSWER_TIMEOUT_S: the spawn fails (a subprocess next)"
    assert not late["probe_ran"], "the late fork ran the worker: two copies of one worker"
    assert len(late["late_reaped"]) == 1, "the late fork exited without a go-ahead and was reaped as a stray"
