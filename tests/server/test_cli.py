"""The `kefu` command, run as a real subprocess (`python -m kefu.server.cli`)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from kefu.protocol.handshake import AppCredential
from kefu.server import config as cfg
from kefu.server.identity import keys
from kefu.server.identity.datakeys import sealer_of
from kefu.server.metrics import Metrics, MetricsServer
from kefu.server.storage.store import Store

TIMEOUT = 30.0


def kefu(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", *args],
        env=clean | dict(env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_help_lists_the_commands() -> None:
    result = kefu("--help")
    assert result.returncode == 0
    for command in ("serve", "check-config", "keygen", "app", "backup", "status"):
        assert command in result.stdout


def test_serve_help_documents_every_setting() -> None:
    result = kefu("serve", "--help")
    assert result.returncode == 0
    for section, key, _, f in cfg.iter_settings():
        assert f"  {key} (" in result.stdout
        assert cfg.env_var(section, key) in result.stdout
        assert cfg.setting_of(f).doc.split()[0] in result.stdout


def test_cli_import_needs_neither_the_server_extra_nor_the_crypto() -> None:
    result = python(
        "import sys, kefu.server.cli\n"
        "heavy = {'uvloop', 'lmdb', 'prometheus_client', 'cryptography', 'kefu.protocol'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_serve_without_the_server_extra_says_so() -> None:
    result = python(
        "import sys\n"
        "sys.modules['uvloop'] = None\n"  # find_spec then reports the module as missing
        "from kefu.server.cli import main\n"
        "raise SystemExit(main(['serve']))"
    )
    assert result.returncode == 2
    assert "needs the server extra" in result.stderr and "kefu[server]" in result.stderr


def test_check_config_prints_the_effective_configuration(tmp_path: Path) -> None:
    path = tmp_path / "kefu.toml"
    path.write_text("[server]\nport = 7500\nhost = '0.0.0.0'\n[log]\nlevel = 'debug'\n")
    result = kefu(
        "check-config", "--config", str(path), "--port", "7700", env={"KEFU_SERVER_PORT": "7600", "KEFU_LOG_JSON": "1"}
    )
    assert result.returncode == 0, result.stderr
    loaded = cfg.load_config(_write(tmp_path / "effective.toml", result.stdout), env={})
    assert loaded.server.port == 7700  # flag > env > file
    assert loaded.server.host == "0.0.0.0" and loaded.log.level == "debug" and loaded.log.json is True
    assert "configuration OK" in result.stderr


def test_check_config_env_beats_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "kefu.toml", "[server]\nport = 7500\n")
    result = kefu("check-config", "--config", str(path), env={"KEFU_SERVER_PORT": "7600"})
    assert "port = 7600" in result.stdout


def test_check_config_rejects_a_bad_file_clearly(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.toml", "[server]\nport = 70000\n[limits]\nconn_frame_per_s = 1\n")
    result = kefu("check-config", "--config", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert "configuration error" in result.stderr
    assert f"{path}: [server] port: must be in 0..65535" in result.stderr
    assert f"{path}: [limits] conn_frame_per_s: unknown key in [limits] (did you mean conn_frames_per_s?)" in (
        result.stderr
    )


def test_check_config_needs_the_server_extra_only_for_a_directory_file(tmp_path: Path) -> None:
    missing = "import sys\nfor m in ('uvloop', 'lmdb', 'prometheus_client', 'lupa', 'httpx'): sys.modules[m] = None\n"
    run = "from kefu.server.cli import main\nraise SystemExit(main(['check-config', '--data-dir', {data!r}]))"
    plain = python(missing + run.format(data=str(tmp_path / "data")))
    assert plain.returncode == 0 and "configuration OK" in plain.stderr, plain.stderr
    (tmp_path / "data").mkdir()
    _write(tmp_path / "data" / "service.toml", "")
    with_file = python(missing + "import os\nos.environ['KEFU_SERVICE_DIRECTORY'] = 'service.toml'\n"
                       + run.format(data=str(tmp_path / "data")))  # fmt: skip
    assert with_file.returncode == 1 and "needs the server extra (missing lupa)" in with_file.stderr


def test_check_config_refuses_what_serve_would_and_serve_then_writes_nothing(tmp_path: Path) -> None:
    """A directory file with an unknown key: check-config says so (install.sh stops there), and serve refuses it
    before it makes a store or development keys."""
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "service.toml", '[groups.general]\ntenant = ""\nbogus = 1\n')
    env = {"KEFU_SERVICE_DIRECTORY": "service.toml"}
    checked = kefu("check-config", "--data-dir", str(data), env=env)
    assert checked.returncode == 1
    assert "kefu serve would refuse to start" in checked.stderr and "unknown keys ['bogus']" in checked.stderr
    free = ["--metrics-port", "0", "--web-port", "0", "--api-port", "0"]
    served = kefu("serve", "--data-dir", str(data), "--port", "0", *free, env=env)
    assert served.returncode == 1 and "cannot start" in served.stderr and "unknown keys ['bogus']" in served.stderr
    assert [p.name for p in data.iterdir()] == ["service.toml"], "nothing was written"
    _write(data / "service.toml", '[groups.general]\ntenant = ""\n')
    fixed = kefu("check-config", "--data-dir", str(data), env=env)
    assert fixed.returncode == 0 and "configuration OK" in fixed.stderr, fixed.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line_before_writing_keys(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        free = ["--metrics-port", "0", "--web-port", "0", "--api-port", "0"]
        served = kefu("serve", "--data-dir", str(tmp_path / "data"), "--port", port, *free)
    assert served.returncode == 1
    assert f"127.0.0.1:{port} is in use" in served.stderr and "Traceback" not in served.stderr
    assert not (tmp_path / "data").exists()


def test_check_config_example_is_the_shipped_file() -> None:
    result = kefu("check-config", "--example")
    assert result.stdout == Path(cfg.__file__).with_name("kefu.example.toml").read_text()


def test_keygen_writes_private_files(tmp_path: Path) -> None:
    result = kefu("keygen", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    keydir = tmp_path / "keys"
    assert stat.S_IMODE(keydir.stat().st_mode) == 0o700
    files = sorted(keydir.iterdir())
    assert [p.name for p in files] == ["ed25519-1.key", "sm2-1.key"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    pins = {f.pin for fs in keys.load_keys(tmp_path).values() for f in fs}
    assert all(pin in result.stdout for pin in pins)
    result = kefu("keygen", "--data-dir", str(tmp_path), "--type", "sm2")
    assert result.stdout.startswith("sm2-2.key  sm2:")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_app_add_list_revoke(data_dir: Path) -> None:
    pin = "sm2:" + "0f" * 32
    added = kefu("app", "add", "teller-1", "--data-dir", str(data_dir), "--client-key-pin", pin,
                 "--role", "integration", "--tenant", "bank")  # fmt: skip
    assert added.returncode == 0, added.stderr
    secret = keys.decode_secret(added.stdout)
    assert "shown only this once" in added.stderr
    store = Store(data_dir / "store", sealer=sealer_of(data_dir, "sm4-gcm"))  # sealed under the data key
    try:
        assert keys.AppDirectory(store)["teller-1"] == AppCredential.from_secret("teller-1", secret, frozenset({pin}))
    finally:
        store.close()

    listed = kefu("app", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert row.split()[:3] == ["teller-1", "integration", "bank"] and pin in row
    for column, value in (("ROLE", "integration"), ("TENANT", "bank"), ("CREATED (UTC)", "20"), ("CLIENT", pin)):
        assert row.index(value) == header.index(column), f"{value} under {column}:\n{header}\n{row}"
    assert added.stdout.strip() not in listed.stdout + listed.stderr
    assert app_list_to_a_closed_pipe(data_dir) == (141, ""), "`kefu app list | head` ends quietly"

    again = kefu("app", "add", "teller-1", "--data-dir", str(data_dir))
    assert again.returncode == 1 and "already exists" in again.stderr

    revoked = kefu("app", "revoke", "teller-1", "--data-dir", str(data_dir))
    assert revoked.returncode == 0 and "revoked" in revoked.stderr
    assert kefu("app", "list", "--data-dir", str(data_dir)).stdout.splitlines()[1:] == []
    missing = kefu("app", "revoke", "teller-1", "--data-dir", str(data_dir))
    assert missing.returncode == 1 and "no app 'teller-1'" in missing.stderr


def app_list_to_a_closed_pipe(data_dir: Path) -> tuple[int, str]:
    """`kefu app list` writing to a pipe whose reader is gone (`| head -0`): its status and standard error."""
    read, write = os.pipe()
    os.close(read)
    try:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        listed = subprocess.run(
            [sys.executable, "-m", "kefu.server.cli", "app", "list", "--data-dir", str(data_dir)],
            stdout=write, stderr=subprocess.PIPE, text=True, env=clean, timeout=TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    return listed.returncode, listed.stderr


def test_app_add_refuses_a_bad_pin(data_dir: Path) -> None:
    result = kefu("app", "add", "x", "--data-dir", str(data_dir), "--client-key-pin", "rsa:00")
    assert result.returncode == 1 and "invalid client key pin" in result.stderr


def test_backup(data_dir: Path, tmp_path: Path) -> None:
    kefu("app", "add", "a", "--data-dir", str(data_dir))
    dest = tmp_path / "backup"
    result = kefu("backup", str(dest), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    copy = Store(dest, sealer=sealer_of(data_dir, "sm4-gcm"))  # sealed as the store is: the same data key
    try:
        assert copy.list_apps() == ["a"]
    finally:
        copy.close()
    again = kefu("backup", str(dest), "--data-dir", str(data_dir))
    assert again.returncode == 1 and "exists" in again.stderr


@pytest.fixture
def metrics_port() -> Iterator[tuple[Metrics, dict[str, object], int]]:
    m = Metrics(process=False)
    health: dict[str, object] = {"status": "ok", "connections": 2}
    srv = MetricsServer(m, "127.0.0.1", 0, lambda: health, poll_interval_s=0.01).start()
    yield m, health, srv.port
    srv.stop()


def test_status(metrics_port: tuple[Metrics, dict[str, object], int]) -> None:
    m, health, port = metrics_port
    m.connection_gauge("national", "open").inc(2)
    m.handshake("national", "ok")
    m.error("MALFORMED_FRAME")
    m.observe("send_ack", 0.004)
    result = kefu("status", "--metrics-port", str(port))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"127.0.0.1:{port}: ok" in out
    assert "connections: 2 (open 2)" in out and "handshakes: ok 1" in out
    assert "errors: MALFORMED_FRAME 1" in out and "mean SEND->SEND_ACK: 4.00 ms" in out
    health["status"] = "draining"
    result = kefu("status", "--metrics-port", str(port))
    assert result.returncode == 1 and "draining" in result.stdout


def test_status_without_a_server(tmp_path: Path) -> None:
    with MetricsServer(Metrics(process=False), "127.0.0.1", 0)._httpd as probe:  # a port nobody listens on
        port = probe.server_address[1]
    result = kefu("status", "--metrics-port", str(port), "--timeout", "2")
    assert result.returncode == 1 and "no answer" in result.stderr


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
