"""Who is online: devices by user, kept small for the common case of one device per user."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["Presence"]

T = TypeVar("T", bound=Hashable)


class Presence(Generic[T]):
    """Devices by user: the device itself for a user with one (a one-element set costs 216 bytes, and most users
    have one device), a set for several. `by_user` is there for hot loops that iterate without building tuples."""

    __slots__ = ("by_user",)

    def __init__(self) -> None:
        self.by_user: dict[str, T | set[T]] = {}

    def add(self, user: str, device: T) -> None:
        """`device` is online for `user`."""
        devices = self.by_user.get(user)
        if devices is None:
            self.by_user[user] = device
        elif isinstance(devices, set):
            devices.add(device)
        else:
            self.by_user[user] = {devices, device}

    def discard(self, user: str, device: T) -> None:
        """`device` is gone (nothing happens if it was not there)."""
        devices = self.by_user.get(user)
        if devices is device:
            del self.by_user[user]
        elif isinstance(devices, set):
            devices.discard(device)
            if len(devices) == 1:
                self.by_user[user] = next(iter(devices))

    def devices(self, user: str) -> tuple[T, ...]:
        """The user's devices (empty if none)."""
        devices = self.by_user.get(user)
        if devices is None:
            return ()
        return tuple(devices) if isinstance(devices, set) else (devices,)

    def __len__(self) -> int:
        """Users with at least one device."""
        return len(self.by_user)
