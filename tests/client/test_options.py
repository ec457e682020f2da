"""ClientOptions: the one configuration of Client and BlockingClient, the secret as text, and the kefu:// URL form."""

from __future__ import annotations

import base64
import dataclasses
import inspect
import urllib.parse
from typing import Any

import pytest

from kefu.client import (
    DEFAULT_PORT,
    BlockingClient,
    BlockingService,
    Client,
    ClientOptions,
    ServiceApi,
    Suite,
    decode_secret,
)

from .scripted import APP_SECRET, PINS

SECRET_TEXT = base64.urlsafe_b64encode(APP_SECRET).rstrip(b"=").decode()  # as `kefu app add` prints it
SM2_PIN, ED_PIN = sorted(PINS, reverse=True)  # "sm2:..." sorts after "ed25519:..."


def url(userinfo: str = f"visitor-1:{SECRET_TEXT}", host: str = "chat.bank.example:7421", query: str = "") -> str:
    return f"kefu://{userinfo}@{host}?{query or 'pin=' + SM2_PIN}"


def test_the_secret_is_taken_as_bytes_or_as_the_cli_prints_it() -> None:
    assert decode_secret(SECRET_TEXT) == APP_SECRET
    assert decode_secret(f"  {SECRET_TEXT}=\n") == APP_SECRET  # padding and surrounding whitespace tolerated
    assert decode_secret(APP_SECRET) == APP_SECRET
    options = ClientOptions(host="h", app_id="a", app_secret=SECRET_TEXT, server_pins=PINS)
    assert options.app_secret == APP_SECRET
    for bad in ("not base64!", "abc+/", ""):
        with pytest.raises(ValueError, match="base64url") as refused:
            decode_secret(bad)
        assert bad not in str(refused.value) or not bad


def test_a_url_states_app_secret_host_port_pins_and_suites() -> None:
    options = ClientOptions.from_url(url(query=f"pin={SM2_PIN}&pin={ED_PIN}&suite=international&suite=NATIONAL"))
    assert (options.host, options.port, options.app_id) == ("chat.bank.example", 7421, "visitor-1")
    assert options.app_secret == APP_SECRET and options.server_pins == PINS
    assert options.suites == (Suite.INTERNATIONAL, Suite.NATIONAL)  # in the order given


def test_url_defaults_percent_encoding_ipv6_and_keyword_overrides() -> None:
    padded = urllib.parse.quote(base64.urlsafe_b64encode(APP_SECRET).decode(), safe="")  # "=" as %3D
    options = ClientOptions.from_url(url(f"caf%C3%A9%40desk:{padded}", "[::1]"), explicit_ack=True, port=9)
    assert (options.app_id, options.host, options.port) == ("café@desk", "::1", 9)
    assert options.app_secret == APP_SECRET and options.explicit_ack
    bare = ClientOptions.from_url(url(host="10.0.0.7"))
    assert bare.port == DEFAULT_PORT == 7420 and bare.suites == (Suite.NATIONAL,)
    keyed = ClientOptions.from_url(f"kefu://visitor-1@h/?pin={SM2_PIN}", app_secret=APP_SECRET)
    assert keyed.app_secret == APP_SECRET and keyed.host == "h"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (url().replace("kefu://", "http://"), "kefu://"),
        (url(host="h:99999"), "port"),
        (url(host="h:port"), "port"),
        (url(userinfo=f":{SECRET_TEXT}"), "app id"),
        (url().replace("?", "/path?"), "path"),
        (url() + "#frag", "fragment"),
        (url(query=f"pin={SM2_PIN}&timeout=3"), "unknown kefu URL parameter 'timeout'"),
        (url(query="pin=sm2:abc"), "not sm2:<64 hex>"),
        (url(query=f"pin={SM2_PIN}&suite=rot13"), "unknown suite"),
        (url(userinfo="visitor-1:%FF%FE"), "percent-encoded UTF-8"),
        (url(userinfo="visitor-1:secret+with+plus"), "base64url"),
        (f"kefu://visitor-1:{SECRET_TEXT}@?pin={SM2_PIN}", "host"),
        (url(userinfo="visitor-1"), "app_secret or client_key"),
        (url(query="suite=national"), "server pin"),
    ],
    ids=lambda value: value if " " in value or "<" in value or len(value) < 40 else "url",
)
def test_malformed_urls_are_refused_without_showing_the_secret(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        ClientOptions.from_url(bad)
    assert SECRET_TEXT not in str(refused.value) and "secret+with" not in str(refused.value)
    error = refused.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)  # nothing chained


def test_the_secret_is_in_no_repr() -> None:
    options = ClientOptions.from_url(url())
    client = Client.from_url(url())
    blocking = BlockingClient.from_url(url())
    try:
        for shown in (repr(options), str(options), repr(client), repr(blocking)):
            assert SECRET_TEXT not in shown and repr(APP_SECRET) not in shown and APP_SECRET.hex() not in shown
        assert repr(client) == "<Client 'visitor-1' at chat.bank.example:7421 disconnected>"
    finally:
        blocking.close()


def test_client_and_blocking_client_take_one_options_object() -> None:
    options = ClientOptions(host="h", app_id="a", app_secret=APP_SECRET, server_pins=PINS, keepalive_s=60)
    client = Client(options=options)
    blocking = BlockingClient(options=options, connect_timeout=3)
    try:
        assert client.options == options
        assert blocking.options == dataclasses.replace(options, connect_timeout=3)
        # the keyword form builds the same object
        assert Client("h", app_id="a", app_secret=APP_SECRET, server_pins=PINS, keepalive_s=60).options == options
        # BlockingClient restates none of the fields: they all go through ClientOptions
        own = set(inspect.signature(BlockingClient.__init__).parameters)
        assert own == {"self", "host", "port", "options", "loop_factory", "fields"}
    finally:
        blocking.close()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"suites": ()}, ValueError),
        ({"app_secret": None}, ValueError),
        ({"keepalive_s": 4.9}, ValueError),
        ({"port": 0}, ValueError),
        ({"send_timeout": 0}, ValueError),
        ({"no_such_option": 1}, TypeError),
    ],
)
def test_invalid_options_are_refused(changes: dict[str, Any], error: type[Exception]) -> None:
    base: dict[str, Any] = {"app_id": "a", "app_secret": APP_SECRET, "server_pins": PINS}
    with pytest.raises(error):
        Client("h", **{**base, **changes})


def test_the_blocking_service_keeps_the_service_api_and_its_types() -> None:
    """Every request of ServiceApi is a BlockingService method with the same parameters and result (events() aside:
    an endless async iterator has no blocking form)."""
    requests = {
        name: method
        for name, method in inspect.getmembers(ServiceApi, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert set(requests) >= {"open", "search", "set_status", "next_event"}
    for name, method in requests.items():
        blocking = inspect.signature(getattr(BlockingService, name), eval_str=True)
        asynchronous = inspect.signature(method, eval_str=True)
        assert blocking == asynchronous, name
