"""A real `kefu serve` with a service directory, apps of every role in two tenants, and an admin app, for the HTTP API
tests; requests over loopback, signed with `kefu.client.http.Signer`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kefu.client.http import ApiClient, Signer
from kefu.server.identity.datakeys import sealer_of
from kefu.server.identity.keys import create_app
from kefu.server.storage.store import Store
from tests.integration.conftest import ServerProcess
from tests.integration.service_harness import add_apps, write_directory

from .openapi_check import response_problems

ADMIN = "ops"
"""The admin app ([api] admin_apps), a plain app otherwise."""
BANK_ORIGIN = "https://portal.bank.example"
"""An origin [api] cors_origins adds to the web port's."""


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """The error code of a refusal."""
        return str(self.body["error"]["code"])


@dataclass
class Api:
    """The server under test and how to call its API."""

    server: ServerProcess
    secrets: dict[str, bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.api_port}"

    def client(self, app: str, **kw: Any) -> ApiClient:
        return ApiClient(self.base, app, self.secrets[app], **kw)

    def signer(self, app: str, **kw: Any) -> Signer:
        return Signer(app, self.secrets[app], **kw)

    def raw(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        """A request with exactly these headers (none added). The answer must be as spec/openapi.json documents it
        (its status listed for the operation, its body fitting the schema)."""
        request = urllib.request.Request(self.base + target, data=body or None, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                reply = Reply(response.status, _json(response.read()), dict(response.headers))
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, _json(exc.read()), dict(exc.headers))
        if method != "OPTIONS":
            assert response_problems(method, target, reply.status, reply.body) == []
        return reply

    def call(self, app: str, method: str, target: str, body: Any = None, **signer: Any) -> Reply:
        """A request signed by `app` (a JSON body, or bytes as they are)."""
        data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        headers = self.signer(app, **signer).headers(method, target, data)
        return self.raw(method, target, data, headers)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def start_api_server(tmp: Path, workers: int, admins: str = ADMIN) -> Api:
    """A started server (`workers` gateway processes; 0: one process) with the service apps and ADMIN; `admins`:
    [api] admin_apps."""
    data_dir = tmp / "data"
    write_directory(data_dir)
    secrets = add_apps(data_dir)
    store = Store(data_dir / "wal", sealer=sealer_of(data_dir, "sm4-gcm"))
    try:
        secrets[ADMIN] = create_app(store, ADMIN)[1]
    finally:
        store.close()
    env = {
        "KEFU_SERVICE_DIRECTORY": "service.toml",
        "KEFU_SERVICE_QUEUE_TICK_MS": "100",
        "KEFU_SERVER_WORKERS": str(workers),
        "KEFU_API_ADMIN_APPS": admins,
        "KEFU_API_CORS_ORIGINS": BANK_ORIGIN,
    }
    server = ServerProcess(data_dir, env=env)
    server.secrets.update(secrets)
    server.start()
    return Api(server, secrets)


@pytest.fixture(scope="module", params=[0, 1], ids=["workers0", "workers1"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server per module and layout: everything in one process, and a core with one gateway process."""
    served = start_api_server(tmp_path_factory.mktemp("api"), request.param)
    try:
        yield served
    finally:
        served.server.stop()


@pytest.fixture(scope="module")
def api0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server in one process (for the tests whose subject is not the layout); "sup" is an admin app too."""
    served = start_api_server(tmp_path_factory.mktemp("api0"), 0, admins=f"{ADMIN},sup")
    try:
        yield served
    finally:
        served.server.stop()
