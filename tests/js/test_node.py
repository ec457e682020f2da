"""The JavaScript client's own tests (clients/js/test/*.test.js) under Node's test runner: spec/vectors byte for byte,
the crypto known answers, the vendored SM package against the locked npm packages. Fails on any failing JS test."""

from __future__ import annotations

import subprocess

from .node import JS, installed, node


def test_node_test_suite_passes() -> None:
    installed()
    tests = sorted(str(p.relative_to(JS)) for p in (JS / "test").glob("*.test.js"))
    assert tests, "no JS tests found"
    result = subprocess.run(
        [node(), "--experimental-websocket", "--test", *tests],
        check=False,
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith(("# pass", "# fail"))]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in summary, summary
