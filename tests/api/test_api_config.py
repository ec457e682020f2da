"""[api] settings: checked against the other ports, and the port checked free before the server starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kefu.server import startcheck
from kefu.server.config import ConfigError, load_config


def test_the_api_port_may_not_be_another_ports(tmp_path: Path) -> None:
    for other in ("server.port", "metrics.port", "web.port"):
        with pytest.raises(ConfigError, match=f"api.port and {other} are both 7600"):
            load_config(env={}, overrides={"api.port": 7600, other: 7600})
    load_config(env={}, overrides={"api.port": 7600, "web.port": 7600, "api.enabled": False})  # off: no conflict
    assert load_config(env={}).api.port == 7423


def test_a_taken_api_port_is_refused_before_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        overrides = {"server.data_dir": str(tmp_path), "server.port": 0, "metrics.port": 0, "web.port": 0}
        config = load_config(env={}, overrides={**overrides, "api.port": port})
        [problem] = startcheck.listen_refusals(config)
        assert problem.startswith("[api] port") and str(port) in problem
        off = load_config(env={}, overrides={**overrides, "api.port": port, "api.enabled": False})
        assert startcheck.listen_refusals(off) == []
