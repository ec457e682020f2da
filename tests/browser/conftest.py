"""Browser tests: Debian's Chromium, driven by Playwright, against a real `kefu serve`.

The browser is the system one (`/usr/bin/chromium`, Debian's package, installed with apt-get when the tests run as
root on a Debian host, as tests/debian.py does for the other tools); Playwright's Python API drives it through
`executable_path`, so no browser build is ever downloaded. One browser per test module (a launch costs about a
second); each test gets fresh browser contexts (their own storage, like separate people on separate machines).

`kefu_site` is a real server as a subprocess (the one helper, `ServeProcess`) with its web port (the console, the
widget, the JS client, the WebSocket gateway and the staff sign-in) and its HTTP API on free loopback ports, a
service directory of one tenant, "bank", staff accounts made with `kefu staff add`, and the keyword AI plugin (FAQ
auto-replies while a visitor waits, drafts for the agent, tags). Beside it, `KefuSite.bank_url` is a tiny "bank
page" on another origin (its own loopback HTTP server) that embeds the visitor widget with its one script tag.
`[web] allowed_origins` is left empty on purpose: the widget's chat runs in a frame of kefu's own origin and needs no
cross-origin access (docs/widget.md), which every widget test thus checks; `start_site(env=...)` can set it.

Tests use the URLs and credentials here and nothing else of the server: what they drive is what a person drives.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kefu.server.runtime.launch import ServeProcess
from tests.debian import debian_install

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root (CI does), where Chromium's sandbox refuses to start
    "--disable-gpu",  # no GPU on these machines
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no update checks, safe-browsing lists or field trials: only loopback
    "--disable-component-update",
    "--disable-sync",
)
"""The flags Chromium needs on a headless test machine with no network but loopback. Playwright adds a fresh
temporary user-data-dir of its own to every launch."""

TENANT = "bank"
STAFF: dict[str, tuple[str, str]] = {
    "a1": ("agent", "a1-correct-horse-battery"),
    "a2": ("agent", "a2-correct-horse-battery"),
    "sup": ("supervisor", "sup-correct-horse-battery"),
}
"""Staff accounts (name -> role, password), made with `kefu staff add` before the server starts."""

DIRECTORY = """
[tenants.bank]
default_group = "general"

[groups.general]
tenant = "bank"

[groups.cards]
tenant = "bank"

[agents.a1]
groups = ["general", "cards"]
max_concurrent = 4

[agents.a2]
groups = ["general", "cards"]
max_concurrent = 4

[supervisors.sup]
groups = ["general", "cards"]

[[plugins]]
name = "faq"
kind = "keyword"
modes = ["auto_reply"]
timeout_s = 2.0
[[plugins.options.faq]]
keywords = ["营业时间", "opening hours"]
answer = "我们的营业时间是每天 9:00-17:00。"

[[plugins]]
name = "drafts"
kind = "keyword"
modes = ["suggest", "classify"]
timeout_s = 2.0
[plugins.options]
tags = { card_loss = ["挂失", "丢了", "lost my card"] }
[[plugins.options.faq]]
keywords = ["挂失", "丢了", "lost my card"]
answer = "您的卡已临时挂失，请带身份证到任一网点补办。"
"""
"""One tenant, two groups, two agents (in both groups), a supervisor; the keyword plugin answers FAQs while a
visitor waits and drafts replies for the agent on card loss."""

SERVER_ENV = {
    "KEFU_SERVICE_DIRECTORY": "service.toml",
    "KEFU_SERVICE_QUEUE_TICK_MS": "100",
}
"""More settings; `ServeProcess` puts the web port and the API on free ports (--web-port 0, --api-port 0)."""
HTTP_TIMEOUT_S = 10.0
_WEB_LINE = re.compile(r"kefu: web\b.*?(https?://[\w.:\[\]]+)")
_API_LINE = re.compile(r"kefu: (?:http )?api\b.*?(https?://[\w.:\[\]]+)")


def _chromium_missing() -> list[str]:
    return [] if CHROMIUM.exists() else [str(CHROMIUM)]


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium, installed with apt-get if missing (skipped, saying how, where that is impossible)."""
    debian_install(("chromium",), _chromium_missing, required=False)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Any]:
    """One headless Chromium for a test module (a `playwright.sync_api.Browser`). Module-scoped, not session-wide:
    Playwright's sync API keeps an asyncio loop marked running in this thread while it is open, and every
    pytest-asyncio test that the same worker ran after a browser module failed ("Cannot run the event loop while
    another loop is running"); closing it at the module's end gives the thread back."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the test extra: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable, args=list(CHROMIUM_ARGS))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """`new_page()` -> a page in a fresh browser context (its own storage: one person); all closed after the test.
    Console messages and page errors are kept on `page.kefu_log` for failure messages."""
    contexts: list[Any] = []

    def open_page(**context_options: Any) -> Any:
        context = browser.new_context(**context_options)
        context.set_default_timeout(HTTP_TIMEOUT_S * 1000)
        contexts.append(context)
        page = context.new_page()
        page.kefu_log = []
        page.on("console", lambda m: page.kefu_log.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.kefu_log.append(f"pageerror: {e}"))
        return page

    yield open_page
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


# --- the bank's page: another origin that embeds the widget ---------------------------------------------------------


class BankSite:
    """A loopback HTTP server standing for the bank's web site: `GET /?lang=zh|en&group=G&tenant=T` is a page with
    the widget's one script tag (whose kefu origin is set once the server listens)."""

    def __init__(self) -> None:
        self.kefu_origin = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                first = {key: values[0] for key, values in query.items()}
                body = site.page(first.get("lang", "zh"), first.get("group", ""), first.get("tenant", TENANT)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, name="bank-site", daemon=True)
        self.thread.start()

    def page(self, lang: str, group: str, tenant: str = TENANT) -> str:
        """The bank's page: its own content and style, and the widget's script tag."""
        attrs = f'data-tenant="{html.escape(tenant)}" data-lang="{html.escape(lang)}"'
        if group:
            attrs += f' data-group="{html.escape(group)}"'
        return (
            "<!doctype html><html><head><meta charset=utf-8><title>Bank</title>"
            "<style>body{font-family:serif;color:#400} button{background:red!important}</style></head>"
            "<body><h1>示例银行 Example Bank</h1><p id=bank-content>Accounts, cards, loans.</p>"
            f'<script src="{self.kefu_origin}/widget/kefu-widget.js" {attrs}></script></body></html>'
        )

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


# --- the kefu server --------------------------------------------------------------------------------------------


@dataclass
class KefuSite:
    """A running `kefu serve` with its web port and API, and the bank's page that embeds the widget."""

    server: ServeProcess
    bank: BankSite
    web_url: str
    """The web port's origin, e.g. http://127.0.0.1:PORT (the console is at web_url + "/console/")."""
    api_url: str | None
    """The HTTP API's origin, or None if it is not served."""
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def console_url(self) -> str:
        return f"{self.web_url}/console/"

    def bank_url(self, lang: str = "zh", group: str = "", tenant: str = TENANT) -> str:
        """The bank's page with the widget (another origin than kefu's)."""
        query = urllib.parse.urlencode({"lang": lang, "tenant": tenant, **({"group": group} if group else {})})
        return f"{self.bank.origin}/?{query}"

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to the web port; the JSON answer (HTTPError for a non-2xx status)."""
        request = urllib.request.Request(
            self.web_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            result: dict[str, Any] = json.loads(answer.read())
        return result

    def sign_in(self, name: str) -> dict[str, Any]:
        """`POST /auth/signin` as staff member `name`: {"app_id", "secret", "expires_at", "role", "tenant"}."""
        return self.post_json("/auth/signin", {"name": name, "password": self.passwords[name]})

    def agent(self, name: str) -> Any:
        """A Python client (kefu.client.BlockingClient) connected as staff member `name` with a session credential
        from the sign-in; the caller closes it."""
        from kefu.client import BlockingClient  # noqa: PLC0415 - only the tests that use a Python agent need it

        session = self.sign_in(name)
        pins = (self.server.data_dir / "keys" / "pins.txt").read_text().split()
        client = BlockingClient(
            "127.0.0.1", self.server.port, app_id=session["app_id"], app_secret=session["secret"],
            server_pins=frozenset(pins), reconnect=False,
        )  # fmt: skip
        client.connect()
        return client

    def metrics(self) -> str:
        """The server's Prometheus text."""
        url = f"http://127.0.0.1:{self.server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as answer:
            text: str = answer.read().decode()
        return text


def _served_origin(server: ServeProcess, attribute: str, line: re.Pattern[str]) -> str | None:
    """The origin of the web port or the API: the helper's attribute (e.g. `web_port`) if it has one, else the
    server's announcement on its standard output."""
    port = getattr(server, attribute, 0)
    if port:
        return f"http://127.0.0.1:{port}"
    for text in server.stdout:
        if m := line.search(text):
            return m.group(1).rstrip("/")
    return None


def _staff_add(data_dir: Path, name: str, role: str) -> subprocess.Popen[str]:
    """`kefu staff add` started; it reads the password from its standard input (the caller gives it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "kefu.server.cli", "staff", "add", name, "--role", role, "--tenant", TENANT,
         "--password-stdin", "--data-dir", str(data_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _add_staff(data_dir: Path) -> None:
    """Every account of STAFF: the first alone (it creates the data directory's keys), the others side by side."""
    accounts = list(STAFF.items())
    for batch in (accounts[:1], accounts[1:]):
        procs = [(name, password, _staff_add(data_dir, name, role)) for name, (role, password) in batch]
        for name, password, proc in procs:
            output, _ = proc.communicate(password + "\n", timeout=60)
            if proc.returncode:
                raise RuntimeError(f"kefu staff add {name} failed: {output}")


def start_site(root: Path, *, env: dict[str, str] | None = None, directory: str = DIRECTORY) -> KefuSite:
    """Start the bank's page and a kefu server for it (see the module docstring); `env` adds server settings,
    `directory` replaces the service directory (it must keep the staff of STAFF)."""
    bank = BankSite()
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "service.toml").write_text(directory)
    try:
        _add_staff(data_dir)
        environment = {**SERVER_ENV, **(env or {})}
        server = ServeProcess(data_dir, env=environment, log_path=root / "server.log")
        server.start()
    except BaseException:
        bank.close()
        raise
    web_url = _served_origin(server, "web_port", _WEB_LINE)
    if web_url is None:
        server.kill()
        bank.close()
        raise RuntimeError(f"the server did not say where its web port listens: {server.stdout}")
    bank.kefu_origin = web_url
    site = KefuSite(server, bank, web_url, _served_origin(server, "api_port", _API_LINE))
    site.passwords = {name: password for name, (_, password) in STAFF.items()}
    return site


def stop_site(site: KefuSite) -> None:
    site.server.kill()
    site.bank.close()


@pytest.fixture(scope="module")
def kefu_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KefuSite]:
    """A kefu server with its web port, API, staff and the bank's page, shared by the tests of a module."""
    site = start_site(tmp_path_factory.mktemp("kefu-site"))
    try:
        yield site
    finally:
        stop_site(site)


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DIRECTORY",
    "STAFF",
    "TENANT",
    "BankSite",
    "KefuSite",
    "start_site",
    "stop_site",
]
