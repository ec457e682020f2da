"""The JS client in Debian's Chromium: the page loads /js/index.js from the kefu web port (no build step, the vendored
SM package as an ES module), and an agent and a visitor go through the real server in each suite, WebCrypto for the
international one: open, routed to the agent, messages both ways, CONVERSATION_INFO, end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.conftest import ServerProcess


def add_app(data_dir: Path, name: str, role: str) -> str:
    """`kefu app add NAME --role ROLE --tenant t1`; the secret as printed (base64url)."""
    out = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "app", "add", name, "--role", role, "--tenant", "t1",
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in out.stdout.splitlines() if line.strip()][-1].strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """One server for both suites' runs (each opens its own conversation, and ends it)."""
    data_dir = tmp_path_factory.mktemp("js-browser") / "data"
    proc = ServerProcess(data_dir)
    secrets = {"a1": add_app(data_dir, "a1", "agent"), "v1": add_app(data_dir, "v1", "visitor")}
    proc.start()
    try:
        yield proc, secrets
    finally:
        proc.kill()


def in_chromium(url: str, script: str, arg: dict[str, Any]) -> tuple[Any, list[str]]:
    """Open `url` in a fresh headless Chromium and evaluate `script` with `arg`: (its result, the page's errors).

    It runs in a thread of its own: Playwright's sync API refuses a thread with a running asyncio loop, and another
    test module's session-wide browser (tests/browser) may have left one marked running in this one."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the test extra: pip install -e '.[test]'")

    def run() -> tuple[Any, list[str]]:
        errors: list[str] = []
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
            try:
                page = browser.new_page()
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(url)
                return page.evaluate(script, arg), errors
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=120)


@pytest.mark.parametrize("suite", ["national", "international"])
def test_js_client_in_chromium(site: tuple[ServerProcess, dict[str, str]], suite: str) -> None:
    server, secrets = site
    script = (Path(__file__).parent / "browser_flow.js").read_text(encoding="utf-8")
    url = f"http://127.0.0.1:{server.web_port}/console/"
    seen, errors = in_chromium(url, script, {"suite": suite, "pins": sorted(server.pins), "secrets": secrets})
    conv = seen["opened"]["conv"]
    assert seen["suite"] == suite
    assert seen["opened"]["agent"] == "a1" and seen["opened"]["state"] == "assigned"
    assert [conv, "v1", f"help ({suite})"] in seen["agentSaw"]
    assert [conv, "a1", f"answer ({suite})"] in seen["visitorSaw"]
    assert ["system", "assigned", conv, False] in seen["events"]
    assert ["system", "assigned", conv, True] in seen["events"], "the staff channel's event, under the conversation"
    assert seen["infoOwner"] == "a1" and seen["staffChannelExact"] is True
    assert errors == []
