"""The data keys that seal the store at rest (`kefu.server.storage.sealing`): their files under data_dir/keys.

Theory of operation — one file per key, 0600 in the 0700 keys directory, written to a temporary file, fsync'd and
linked into place (`keys.write_private_file`), so a key is never overwritten nor half-written::

    data-1.key, data-2.key, ...        {"id": n, "cipher": "sm4-gcm" | "aes-gcm", "key": hex, "created": ISO time}

The highest id seals; every key on disk opens. The first start of a data directory makes data-1.key with the
configured cipher ([storage] seal_cipher). Rotation (`add_data_key`, `kefu data-key rotate`) writes key n+1: new
records are sealed under it from the next start (or reload) of every process that writes, and the records under
older keys are sealed again in the background; an older key is deleted (`retire_data_key`) only once nothing is
sealed under it. Losing every copy of a data key loses what it sealed: back up the keys directory on its own,
apart from the store's backups (a backup of the store alone is useless to whoever steals it, which is the point).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Final

from ..storage.sealing import KEY_BYTES, DataKey, Sealer
from .keys import keys_dir, write_private_file

__all__ = [
    "DataKeyError",
    "add_data_key",
    "data_key_path",
    "ensure_data_keys",
    "load_data_keys",
    "retire_data_key",
    "sealer_of",
]

_NAME: Final = re.compile(r"data-([1-9][0-9]{0,9})\.key")


class DataKeyError(Exception):
    """A data key file that does not parse, or a retirement that would lose data."""


def data_key_path(data_dir: Path, key_id: int) -> Path:
    """Where data key `key_id` lives."""
    return Path(data_dir) / "keys" / f"data-{key_id}.key"


def load_data_keys(data_dir: Path) -> list[DataKey]:
    """Every data key in data_dir/keys, oldest first (the last one seals); [] if there is none."""
    directory = Path(data_dir) / "keys"
    if not directory.is_dir():
        return []
    keys = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            raw = json.loads(path.read_text())
            key = DataKey(int(raw["id"]), str(raw["cipher"]), bytes.fromhex(raw["key"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataKeyError(f"{path}: not a data key file ({exc})") from None
        if key.key_id != int(match.group(1)):
            raise DataKeyError(f"{path}: holds data key {key.key_id}, not {match.group(1)}")
        keys.append(key)
    return sorted(keys, key=lambda k: k.key_id)


def add_data_key(data_dir: Path, cipher: str) -> DataKey:
    """Write a new data key with the next id (it seals from the next start of the processes that write)."""
    if cipher not in KEY_BYTES:
        raise DataKeyError(f"unknown cipher {cipher!r}")
    existing = load_data_keys(data_dir)
    key = DataKey((existing[-1].key_id if existing else 0) + 1, cipher, secrets.token_bytes(KEY_BYTES[cipher]))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {"id": key.key_id, "cipher": cipher, "key": key.secret.hex(), "created": created}
    keys_dir(data_dir)
    write_private_file(data_key_path(data_dir, key.key_id), (json.dumps(body) + "\n").encode())
    return key


def ensure_data_keys(data_dir: Path, cipher: str) -> list[DataKey]:
    """The data keys, after making the first one with `cipher` if there is none."""
    keys = load_data_keys(data_dir)
    return keys or [add_data_key(data_dir, cipher)]


def sealer_of(data_dir: Path, cipher: str) -> Sealer:
    """A `Sealer` over every data key of `data_dir` (the first one made if there is none), which looks at the files
    again when a value names a key it does not know (a key rotated in while it runs)."""
    return Sealer(ensure_data_keys(data_dir, cipher), reload=lambda: load_data_keys(data_dir))


def retire_data_key(data_dir: Path, key_id: int, *, still_sealed: int) -> None:
    """Delete data key `key_id`. `still_sealed`: how many stored records are sealed under it (the caller counts them
    in the store and its log); refused unless 0, and refused for the newest key, which seals."""
    keys = load_data_keys(data_dir)
    if not any(k.key_id == key_id for k in keys):
        raise DataKeyError(f"no data key {key_id} in {Path(data_dir) / 'keys'}")
    if key_id == keys[-1].key_id:
        raise DataKeyError(f"data key {key_id} is the newest: it seals new records")
    if still_sealed:
        raise DataKeyError(f"{still_sealed} records are still sealed under data key {key_id}: wait for the reseal")
    data_key_path(data_dir, key_id).unlink()
