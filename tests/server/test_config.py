"""kefu.server.config: declarations, layering, validation, reload and the example file."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from kefu.protocol.crypto import Suite
from kefu.server import config as cfg
from kefu.server.config import Config, ConfigError, load_config

EXAMPLE = Path(cfg.__file__).with_name("kefu.example.toml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kefu.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_documented_ones() -> None:
    c = Config()
    assert (c.server.host, c.server.port, c.server.data_dir) == ("127.0.0.1", 7420, "./data")
    assert c.server.suites == ("national", "international")
    assert c.metrics.port == 7421 and c.metrics.enabled
    assert c.limits.total_write_buffer_bytes == 1 << 30
    assert c.delivery.commit_window_ms == 2.0
    assert c.storage.retention_max_age_days == 0 and c.storage.archive_dir == "archive"
    assert (c.log.level, c.log.json) == ("info", False)
    assert load_config(env={}) == c


def test_every_setting_is_documented() -> None:
    for section, key, _, f in cfg.iter_settings():
        spec = cfg.setting_of(f)
        assert spec.doc.endswith("."), f"{section}.{key}"
        assert len(spec.doc) > 15, f"{section}.{key}"
        if key.endswith(("_s", "_ms")) and not key.endswith("_per_s"):
            assert spec.unit in ("seconds", "milliseconds"), f"{section}.{key} has no time unit"
        if key.endswith(("_per_s", "_bytes", "_mb", "_gb", "_days")):
            assert spec.unit, f"{section}.{key} has no unit"


def test_example_file_is_generated_from_the_code() -> None:
    assert EXAMPLE.read_text() == cfg.render_example_toml(), "regenerate server/kefu.example.toml"


def test_example_file_holds_every_key_and_loads_to_the_defaults() -> None:
    doc = tomllib.loads(cfg.render_example_toml())
    assert {(s, k) for s, t in doc.items() for k in t} == {(s, k) for s, k, _, _ in cfg.iter_settings()}
    assert load_config(EXAMPLE, env={}) == Config()
    for section, key, _, _ in cfg.iter_settings():
        assert cfg.env_var(section, key) in cfg.render_example_toml()


def test_render_toml_round_trips_a_changed_config(tmp_path: Path) -> None:
    c = load_config(env={}, overrides={"server.suites": "international", "log.json": True, "server.host": 'a"b'})
    assert load_config(write(tmp_path, cfg.render_toml(c, comments=False)), env={}) == c


def test_layers_later_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 7500\nhost = '0.0.0.0'\n[limits]\nconn_frames_per_s = 7\n")
    c = load_config(path, env={})
    assert (c.server.port, c.server.host, c.limits.conn_frames_per_s) == (7500, "0.0.0.0", 7)
    c = load_config(path, env={"KEFU_SERVER_PORT": "7600"})
    assert (c.server.port, c.server.host) == (7600, "0.0.0.0")
    c = load_config(path, env={"KEFU_SERVER_PORT": "7600"}, overrides={"server.port": 7700})
    assert c.server.port == 7700


def test_env_values_are_typed_by_the_field() -> None:
    env = {
        "KEFU_METRICS_ENABLED": "0",
        "KEFU_LOG_JSON": "TRUE",
        "KEFU_SERVER_SUITES": "international, national",
        "KEFU_SERVER_DRAIN_TIMEOUT_S": "2.5",
        "KEFU_STORAGE_ARCHIVE_DIR": "/var/archive",
        "UNRELATED": "x",
    }
    c = load_config(env=env)
    assert c.metrics.enabled is False and c.log.json is True
    assert c.server.suites == ("international", "national")
    assert c.server.drain_timeout_s == 2.5
    assert c.archive_path == Path("/var/archive")


def test_kefu_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 1234\n")
    assert load_config(env={"KEFU_CONFIG": str(path)}).server.port == 1234


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nprot = 1\n", "[server] prot: unknown key in [server] (did you mean port?)"),
        ("[sever]\nport = 1\n", "unknown section [sever]"),
        ("[server]\nport = 70000\n", "[server] port: must be in 0..65535"),
        ("[server]\nport = '7420'\n", "[server] port: expected integer"),
        ("[server]\nport = true\n", "[server] port: expected integer"),
        ("[metrics]\nenabled = 1\n", "[metrics] enabled: expected boolean"),
        ("[server]\nsuites = ['national', 'rot13']\n", "'rot13' not one of"),
        ("[server]\nsuites = []\n", "at least one entry"),
        ("[server]\nmax_connections = 0\n", "[server] max_connections: must be at least 1"),
        ("[server]\nhandshake_timeout_s = nan\n", "finite"),
        ("[log]\nlevel = 'loud'\n", "[log] level: 'loud' not one of"),
        ("[server]\nkeepalive_min_s = 200\nkeepalive_max_s = 100\n", "keepalive_min_s (200) exceeds"),
        ("[server]\nkeepalive_max_s = 400\n", "keepalive_max_s"),
        ("[limits]\nwrite_low_water = 300000\n", "limits.write_low_water (300000) exceeds limits.write_high_water"),
        ("server = 1\n", "server must be a [section] table"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_files_are_named_with_section_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = -1\nhots = 'x'\n[log]\nlevel = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"KEFU_SERVER_NOPE": "1", "KEFU_LIMITS_CONN_FRAMES_PER_S": "many"})
    problems = "\n".join(info.value.problems)
    assert len(info.value.problems) == 5
    assert "environment KEFU_SERVER_NOPE: no such setting" in problems
    assert "environment KEFU_LIMITS_CONN_FRAMES_PER_S ([limits] conn_frames_per_s): expected an integer" in problems


def test_missing_file_and_bad_overrides() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/kefu.toml", env={})
    with pytest.raises(ConfigError, match=r"command line \(\[server\] port\): must be in 0..65535"):
        load_config(env={}, overrides={"server.port": 65536})
    with pytest.raises(ConfigError, match=r"no such setting 'server\.nope'"):
        load_config(env={}, overrides={"server.nope": 1})


def test_reloadable_fields_are_limits_and_log_level() -> None:
    names = cfg.reloadable_fields()
    assert "log.level" in names
    assert {f"limits.{f.name}" for f in dataclasses.fields(cfg.LimitsSection)} <= names
    assert not names & {"server.port", "server.data_dir", "metrics.port", "log.json", "storage.map_size_mb"}


def test_reload_from_takes_only_reloadable_values() -> None:
    old = Config()
    new = load_config(
        env={}, overrides={"limits.conn_frames_per_s": 9, "log.level": "debug", "server.port": 1, "log.json": True}
    )
    applied, ignored = old.reload_changes(new)
    assert [c.name for c in applied] == ["limits.conn_frames_per_s", "log.level"]
    assert {c.name for c in ignored} == {"server.port", "log.json"}
    merged = old.reload_from(new)
    assert merged.limits.conn_frames_per_s == 9 and merged.log.level == "debug"
    assert merged.server.port == 7420 and merged.log.json is False
    assert old.diff(merged) == applied


def test_describe_settings_names_every_key_and_variable() -> None:
    text = cfg.describe_settings()
    for section, key, _, _ in cfg.iter_settings():
        assert f"  {key} (" in text and cfg.env_var(section, key) in text


def test_suite_ids_follow_preference_order() -> None:
    c = load_config(env={"KEFU_SERVER_SUITES": "international,national"})
    assert c.server.suite_ids() == (Suite.INTERNATIONAL, Suite.NATIONAL)


def test_server_and_metrics_ports_must_differ() -> None:
    with pytest.raises(ConfigError, match=r"server\.port and metrics\.port are both 7421"):
        load_config(env={"KEFU_SERVER_PORT": "7421"})
    assert load_config(env={"KEFU_SERVER_PORT": "7421", "KEFU_METRICS_ENABLED": "false"}).server.port == 7421
