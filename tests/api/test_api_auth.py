"""Who may call the HTTP API (spec 17.2): signed requests, each way one can be wrong answered with its own status and
code, replay refused; the staff session bearer from a real sign-in; the nonce cache's bound."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from itertools import count
from pathlib import Path

import pytest

from kefu.client.http import ApiRefused, Signer
from kefu.server.api.auth import NonceCache
from kefu.server.api.context import ApiError
from tests.integration.conftest import ServerProcess
from tests.integration.service_harness import add_apps, write_directory

from .conftest import ADMIN, Api

_nonces = count()


def fixed_nonce() -> str:
    return f"fixed-nonce-{next(_nonces):06d}"


def test_an_unsigned_request_is_refused(api0: Api) -> None:
    reply = api0.raw("GET", "/v1/queues")
    assert (reply.status, reply.code) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc",
        "KEFU-HMAC-SM3",
        "KEFU-HMAC-SM3 app_id=sup,ts=1,nonce=short,sig=AAAA",
        "KEFU-HMAC-SM3 app_id=sup,ts=soon,nonce=abcdefghijklmnopq,sig=" + "A" * 43,
        "KEFU-HMAC-SHA256 app_id=sup,nonce=abcdefghijklmnopq,sig=" + "A" * 43,
        "Kefu-Session sup",
        "Kefu-Session sup:not-32-bytes",
    ],
)
def test_a_malformed_authorization_is_refused(api0: Api, value: str) -> None:
    reply = api0.raw("GET", "/v1/queues", headers={"Authorization": value})
    assert (reply.status, reply.code) == (401, "MALFORMED_AUTHORIZATION"), reply.body


def test_both_schemes_are_accepted(api0: Api) -> None:
    for scheme in ("KEFU-HMAC-SM3", "KEFU-HMAC-SHA256"):
        assert api0.call("sup", "GET", "/v1/queues", scheme=scheme).status == 200


def test_a_wrong_signature_and_an_unknown_app_get_the_same_answer(api0: Api) -> None:
    body = json.dumps({"status": "online"}).encode()
    headers = api0.signer("a1").headers("PUT", "/v1/agents/a1/status", b'{"status": "away"}')
    tampered_body = api0.raw("PUT", "/v1/agents/a1/status", body, headers)
    assert (tampered_body.status, tampered_body.code) == (401, "AUTH_FAILED")

    signed = api0.signer("sup").headers("GET", "/v1/queues?x=1")
    for target in ("/v1/queues?x=2", "/v1/queues", "/v1/wall?x=1"):  # the query and the path are signed
        assert api0.raw("GET", target, headers=signed).code == "AUTH_FAILED"
    assert api0.raw(
        "DELETE", "/v1/admin/apps/x", headers=api0.signer("sup").headers("GET", "/v1/admin/apps/x")
    ).code == ("AUTH_FAILED")  # the method is signed
    other_secret = Signer("sup", api0.secrets["bankapp"]).headers("GET", "/v1/queues")
    wrong = api0.raw("GET", "/v1/queues", headers=other_secret)
    unknown = api0.raw("GET", "/v1/queues", headers=Signer("nobody", api0.secrets["sup"]).headers("GET", "/v1/queues"))
    assert (wrong.status, wrong.code) == (unknown.status, unknown.code) == (401, "AUTH_FAILED")
    assert wrong.body == unknown.body  # no telling which app ids exist


def test_a_stale_timestamp_is_refused(api0: Api) -> None:
    for skew in (-400.0, 400.0):
        reply = api0.call("sup", "GET", "/v1/queues", clock=lambda skew=skew: time.time() + skew)
        assert (reply.status, reply.code) == (401, "STALE_TIMESTAMP")
    assert api0.call("sup", "GET", "/v1/queues", clock=lambda: time.time() - 200).status == 200  # within 300 s


def test_a_replayed_request_is_refused(api0: Api) -> None:
    headers = api0.signer("sup", nonce=fixed_nonce).headers("GET", "/v1/queues")
    assert api0.raw("GET", "/v1/queues", headers=headers).status == 200
    replay = api0.raw("GET", "/v1/queues", headers=headers)
    assert (replay.status, replay.code) == (401, "REPLAYED_NONCE")
    # a send replayed is refused before it reaches the log, whatever its client_msg_id
    conv = api0.call("bankapp", "POST", "/v1/conversations", {"customer": "c-r", "client_ref": "r-r"}).body
    body = json.dumps({"conversation_id": conv["conversation_id"], "client_msg_id": "rp", "text": "x"}).encode()
    sent = api0.signer("bankapp", nonce=fixed_nonce).headers("POST", "/v1/messages", body)
    assert api0.raw("POST", "/v1/messages", body, sent).status == 201
    assert api0.raw("POST", "/v1/messages", body, sent).code == "REPLAYED_NONCE"


def test_an_admin_app_is_admin_only_when_it_signs(api0: Api) -> None:
    assert api0.call("sup", "GET", "/v1/admin/apps").status == 200  # "sup" is in admin_apps here
    assert api0.call(ADMIN, "GET", "/v1/admin/keys").status == 200
    assert api0.call("bankapp", "GET", "/v1/admin/apps").code == "ADMIN_REQUIRED"


def signin(api: Api, name: str, password: str) -> dict[str, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api.server.web_port}/auth/signin", method="POST",
        data=json.dumps({"name": name, "password": password}).encode(), headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, str] = json.loads(response.read())
    return answer


def test_a_staff_session_is_a_bearer(api0: Api) -> None:
    password = "correct horse battery staple"
    added = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "staff", "add", "sup", "--role", "supervisor", "--tenant", "bank",
         "--password-stdin", "--data-dir", str(api0.server.data_dir)],
        input=password + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    session = signin(api0, "sup", password)
    bearer = {"Authorization": f"Kefu-Session {session['app_id']}:{session['secret']}"}
    wall = api0.raw("GET", "/v1/wall", headers=bearer)
    assert wall.status == 200 and {g["tenant"] for g in wall.body["groups"]} == {"bank"}
    # a session is never admin, even of an app in admin_apps
    assert api0.raw("GET", "/v1/admin/apps", headers=bearer).code == "ADMIN_REQUIRED"
    wrong = {"Authorization": f"Kefu-Session sup:{'A' * 43}"}
    assert (api0.raw("GET", "/v1/wall", headers=wrong).code) == "AUTH_FAILED"
    request = urllib.request.Request(
        f"http://127.0.0.1:{api0.server.web_port}/auth/signout", method="POST",
        data=json.dumps({"app_id": "sup", "secret": session["secret"]}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 204)
    assert api0.raw("GET", "/v1/wall", headers=bearer).code == "AUTH_FAILED"


def test_the_nonce_cache_is_bounded_and_forgets_in_time() -> None:
    now = [0.0]
    cache = NonceCache(limit=3, clock=lambda: now[0])
    for n in range(3):
        cache.claim("app", f"n{n}", 10.0)
    with pytest.raises(ApiError) as replayed:
        cache.claim("app", "n1", 10.0)
    assert replayed.value.code == "REPLAYED_NONCE"
    with pytest.raises(ApiError) as full:
        cache.claim("app", "n3", 10.0)
    assert (full.value.status, full.value.code) == (503, "BUSY")
    now[0] = 10.0
    cache.claim("app", "n3", 10.0)  # the old ones expired: room again
    assert len(cache) == 1
    cache.claim("app", "n1", 10.0)  # and a nonce may come back once forgotten (its timestamp is then stale)


def test_the_python_api_client(api0: Api) -> None:
    client = api0.client("bankapp", scheme="KEFU-HMAC-SHA256")
    opened = client.post("/v1/conversations", {"customer": "c-py", "client_ref": "py-1", "first_message": "hi"})
    conv = opened["conversation_id"]
    messages = client.get(f"/v1/conversations/{conv}/messages", limit=10)["messages"]
    assert [m["text"] for m in messages if m["sender"] == "bankapp"] == ["hi"]
    with pytest.raises(ApiRefused) as refused:
        api0.client("otherapp").get(f"/v1/conversations/{conv}/messages")
    assert (refused.value.status, refused.value.code) == (404, "NOT_FOUND")


@pytest.mark.parametrize("workers", [0, 1])
def test_admin_apps_change_on_sighup(tmp_path: Path, workers: int) -> None:
    data_dir = tmp_path / "data"
    write_directory(data_dir)
    secrets = add_apps(data_dir)
    config = tmp_path / "kefu.toml"
    config.write_text(f"[server]\nworkers = {workers}\n[api]\nadmin_apps = []\n")
    server = ServerProcess(data_dir, extra=["--config", str(config)], env={"KEFU_SERVICE_DIRECTORY": "service.toml"})
    server.start()
    try:
        api = Api(server, secrets)
        assert api.call("bankapp", "GET", "/v1/admin/apps").code == "ADMIN_REQUIRED"
        config.write_text(f'[server]\nworkers = {workers}\n[api]\nadmin_apps = ["bankapp"]\n')
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while api.call("bankapp", "GET", "/v1/admin/apps").status != 200:
            assert time.monotonic() < deadline, "the reload did not reach the API"
            time.sleep(0.1)
    finally:
        server.stop()
