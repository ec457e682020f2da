"""The start check `kefu check-config` and `kefu serve` share (kefu.server.startcheck), on real files and sockets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kefu.server import startcheck
from kefu.server.config import Config, load_config
from kefu.server.service.directory import load_directory
from kefu.server.service.setup import directory_changes
from kefu.server.storage.deployment import write_marker

RULE = 'function route(visitor)\n  return { group = "general" }\nend\n'


def config_of(data_dir: Path, **settings: object) -> Config:
    overrides = {"server.data_dir": str(data_dir), "server.port": 0, "metrics.port": 0, **settings}
    return load_config(None, overrides=overrides, env={})


def with_directory(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Config:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "service.toml").write_text(text)
    for name, content in (files or {}).items():
        (data / name).write_text(content)
    return config_of(data, **{"service.directory": "service.toml"})


def test_a_new_data_directory_and_a_good_directory_file_pass_and_nothing_is_written(tmp_path: Path) -> None:
    assert startcheck.refusals(config_of(tmp_path / "new")) == []
    assert not (tmp_path / "new").exists(), "the check only reads"
    config = with_directory(
        tmp_path,
        '[tenants.bank]\nrules = "route.lua"\n[groups.general]\ntenant = "bank"\n'
        '[[plugins]]\nname = "faq"\nkind = "keyword"\nmodes = ["auto_reply"]\n'
        '[[plugins.options.faq]]\nkeywords = ["hours"]\nanswer = "9 to 5"\n',
        {"route.lua": RULE},
    )
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert startcheck.refusals(config) == []
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before


@pytest.mark.parametrize(
    ("text", "files", "named"),
    [
        ('[groups.general]\ntenant = ""\nbogus = 1\n', {}, "unknown keys ['bogus']"),
        ('[tenants.bank]\nrules = "route.lua"\n', {"route.lua": "return (\n"}, "tenants.bank.rules"),
        ('[tenants.bank]\nrules = "missing.lua"\n', {}, "missing.lua"),
        ('[[plugins]]\nname = "x"\nkind = "nosuch"\nmodes = ["classify"]\n', {}, "unknown plugin kind 'nosuch'"),
        ('[[plugins]]\nname = "x"\nkind = "keyword"\nmodes = ["classify"]\n', {}, "plugin 'x'"),
    ],
    ids=["unknown-key", "rule-does-not-compile", "rule-file-missing", "plugin-kind-unknown", "plugin-not-built"],
)
def test_what_the_service_layer_would_refuse_is_refused_and_named(
    tmp_path: Path, text: str, files: dict[str, str], named: str
) -> None:
    [problem] = startcheck.refusals(with_directory(tmp_path, text, files))
    assert named in problem and "service.toml" in problem


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    [problem] = startcheck.refusals(config_of(tmp_path / "data"))
    assert "is not a directory" in problem
    [problem] = startcheck.refusals(config_of(tmp_path / "data" / "below"))
    assert "cannot create it" in problem


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the modes say")
def test_a_data_dir_kefu_cannot_write_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o500)
    try:
        [problem] = startcheck.refusals(config_of(data))
    finally:
        data.chmod(0o700)
    assert "cannot read, write and enter it" in problem


def test_a_lost_store_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    write_marker(data, "0" * 32)
    [problem] = startcheck.refusals(config_of(data))
    assert "missing" in problem and "deployment" in problem
    assert not (data / "store").exists()


def test_a_port_in_use_is_refused_and_port_zero_is_not(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        [problem] = startcheck.listen_refusals(config_of(tmp_path, **{"server.port": port}))
        assert f"[server] port: 127.0.0.1:{port} is in use" in problem
        [problem] = startcheck.listen_refusals(config_of(tmp_path, **{"metrics.port": port}))
        assert problem.startswith("[metrics] port")
        assert startcheck.listen_refusals(config_of(tmp_path, **{"metrics.enabled": False, "metrics.port": port})) == []
    assert startcheck.listen_refusals(config_of(tmp_path)) == []


def test_a_port_another_kefu_shares_with_so_reuseport_is_refused(tmp_path: Path) -> None:
    """A supervisor holds its port with SO_REUSEPORT, which a second server's supervisor could bind too."""
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert startcheck.listen_refusals(config_of(tmp_path, **{"server.port": port})) != []


def test_directory_changes_name_what_a_reload_changed(tmp_path: Path) -> None:
    old_file, new_file = tmp_path / "old.toml", tmp_path / "new.toml"
    old_file.write_text(
        "[groups.general]\n[groups.cards]\n[agents.a1]\nmax_concurrent = 1\n"
        '[[plugins]]\nname = "faq"\nkind = "keyword"\nmodes = ["auto_reply"]\n'
    )
    new_file.write_text(
        "[groups.general]\n[groups.vip]\n[agents.a1]\nmax_concurrent = 2\n"
        '[[plugins]]\nname = "faq"\nkind = "keyword"\nmodes = ["classify"]\n'
    )
    old, new = load_directory(old_file), load_directory(new_file)
    assert directory_changes(old, new) == [
        "groups added: vip", "groups removed: cards", "agents changed: a1", "plugins changed: faq",
    ]  # fmt: skip
    assert directory_changes(new, new) == []
