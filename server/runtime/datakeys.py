"""The running core's data keys: the background reseal from the start, and the keys taken again on SIGHUP.

Theory of operation: the processes that write the store seal with the newest data key they loaded (at start). After
`kefu data-key rotate` a SIGHUP makes the core load the keys again (`DataKeys.reload`, on the event loop; the key
files are read there, a few hundred bytes). When they changed, in this order:

1. the core's sealers switch: the group commit's (new messages and puts are sealed under the new key from its next
   batch) and the store's (reads, `Store.commit`);
2. the indexer process is restarted (`IndexerProcess.restart_async`: it indexes what is durable, exits, and a new one
   loads the keys at its start): the conversation records and cursors it writes are then sealed (tagged)
   under the new key, and it opens what the reseal writes (a cursor it could not open would be taken as 0);
3. only then does the reseal start (`kefu.server.storage.reseal.Resealer`, on its own thread), and it waits
   `RESEAL_GRACE_S` first, so that every gateway process (which reads the apps table) has taken the SIGHUP too.

A SIGHUP with no new key changes nothing here. At start the reseal makes one pass at once: it finishes a reseal a
restart interrupted, and counts the values per key id for the metric (kefu_storage_sealed_records{key_id}).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

from .. import log as logmod
from ..identity.datakeys import DataKeyError, load_data_keys
from ..storage.reseal import Resealer
from ..storage.sealing import Sealer

__all__ = ["RESEAL_GRACE_S", "DataKeys", "changed_keys", "reload_reader"]

RESEAL_GRACE_S: Final = 2.0
"""Between the core's switch to new keys and the first value resealed under them: the gateways, which read the
apps table, take the same SIGHUP from the supervisor within milliseconds; this leaves them seconds."""


class DataKeys:
    """The data keys of a running core over `store` (sealed if `store.sealer` is set) and its log (`Conversations`:
    the group commit, whose sequencer seals, and the indexer process). `start()`, `reload_soon()`, `stop()`."""

    def __init__(self, config: Any, store: Any, log: Any, *, metrics: Any = None) -> None:
        self.data_dir = config.data_path
        self.store, self.log = store, log
        sealer: Sealer | None = store.sealer  # None: a plain store
        observe = metrics.observe_sealed if metrics is not None else None
        self.resealer = Resealer(store, sealer, observe=observe) if sealer is not None else None
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    def start(self) -> None:
        """Start the reseal thread (a sealed store only)."""
        if self.resealer is not None:
            self.resealer.start()

    def reload_soon(self) -> None:
        """SIGHUP (on the loop): `reload` as a task of its own."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """SIGHUP: take the data keys on disk if they changed; True if they did."""
        if self.resealer is None:
            return False
        async with self._reloading:
            current: Sealer = self.store.sealer
            sealer = changed_keys(self.data_dir, current)
            if sealer is None:
                return False
            self._install(sealer)
            logmod.event(
                "storage.data_keys_reloaded", datakey=sealer.active, previous_datakey=current.active,
                datakeys=",".join(map(str, sorted(sealer.key_ids))),
            )  # fmt: skip
            await self.log.indexer.restart_async()
            await asyncio.sleep(RESEAL_GRACE_S)
            self.resealer.update(sealer)
            return True

    def _install(self, sealer: Sealer) -> None:
        """Every sealer of this process: the reads' first (so that they open what is sealed under the new key from
        now on), then the store's own sequencer, then the group commit's (read once per batch on the writer thread)."""
        self.store.values.sealer = sealer
        self.store.sealer = sealer
        self.store.sequencer.sealer = sealer
        self.log.committer.sequencer.sealer = sealer

    def stop(self) -> None:
        """Stop the reseal thread after its current step (its progress is in meta); before the store closes."""
        if self.resealer is not None:
            self.resealer.stop()


def changed_keys(data_dir: Path, current: Sealer) -> Sealer | None:
    """A `Sealer` over the data keys now in `data_dir`, or None if its sealing key is `current`'s (or the keys do
    not load: logged, the current keys stay). The sealing key decides, not the set of keys: `current` adds a key
    to those it opens as soon as it meets a value under it (`Sealer`'s reload), which a `kefu app add` after `kefu
    data-key rotate` brings before the reload does."""
    try:
        sealer = Sealer(load_data_keys(data_dir), reload=lambda: load_data_keys(data_dir))
    except (DataKeyError, ValueError) as exc:
        logmod.error("storage.data_keys_reload_failed", reason=str(exc))
        return None
    return None if sealer.active == current.active else sealer


def reload_reader(store: Any, data_dir: Path) -> None:
    """SIGHUP in a process that only reads the store (a gateway: the apps table): open with the keys now on disk, so
    that it reads what the core reseals under a new key."""
    current: Sealer | None = store.sealer
    if current is None:
        return  # a plain store
    sealer = changed_keys(data_dir, current)
    if sealer is not None:
        store.values.sealer = sealer
        store.sealer = sealer
        logmod.event("storage.data_keys_reloaded", datakey=sealer.active, previous_datakey=current.active)
