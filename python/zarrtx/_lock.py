"""Per-thread reentrancy on top of the engine's user locks.

``_core.Store.lock`` is a plain readers-writer ``flock``: not reentrant, and a named lock also holds the store-wide
lock in "r" mode. Taking the same lock twice from one thread would deadlock on itself. This module keeps, per
thread, a registry keyed by ``(realpath of the store, lower-cased lock name or None)`` of the locks the thread
holds (mode, nesting count, engine guard), so that:

- re-acquiring a held lock with the same or a weaker mode ("r" inside "w") only counts;
- "w" inside a held "r" raises :class:`zarrtx.ZarrtxError` (upgrading would deadlock: take "w" from the start);
- a named lock inside a held store-wide "w" is implied (the store-wide "w" already excludes everybody else);
- a store-wide "w" inside a held named lock raises (the named lock holds the store lock in "r", so the thread
  would wait for itself: take the store-wide lock first);
- the engine lock is released when the outermost context exits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .errors import InvalidElement, ZarrtxError

__all__ = ["StoreLock", "check_mode"]

_local = threading.local()


def _forget_after_fork() -> None:
    # A forked child is another process: the locks its parent's thread held are not the child's to re-enter
    # (the child must queue for them like anybody else).
    global _local
    _local = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


class _Held:
    """One lock this thread holds: its mode, how many times it was entered, and the engine's LockGuard (None when
    implied by a held store-wide "w")."""

    __slots__ = ("mode", "count", "guard")

    def __init__(self, mode: str, count: int, guard: Any) -> None:
        self.mode = mode
        self.count = count
        self.guard = guard


def _registry() -> dict[tuple[str, str | None], _Held]:
    reg = getattr(_local, "held", None)
    if reg is None:
        reg = {}
        _local.held = reg
    return reg


def check_mode(mode: Any) -> str:
    """Returns ``mode`` if it is "r" or "w"; raises :class:`zarrtx.InvalidElement` (a ValueError) otherwise."""
    if mode not in ("r", "w"):
        raise InvalidElement(
            f"lock mode {mode!r} is not valid: use mode='r' (shared, for readers) or mode='w' (exclusive, for writers)"
        )
    return mode


def _describe(name: str | None) -> str:
    return "the store-wide lock" if name is None else f"lock '{name}'"


class StoreLock:
    """A reentrant (per thread) readers-writer lock on a store or on one name in it; use it as a context manager.

    Created by :meth:`zarrtx.Store.lock`. Entering blocks until the lock is held (or raises
    :class:`zarrtx.LockTimeout`); leaving the outermost context of this thread releases it. The lock is advisory:
    it orders cooperating code (read-modify-write sequences), it is not needed for zarrtx's own writes, which are
    atomic without it.
    """

    def __init__(
        self,
        acquire: Callable[[str | None, str, float | None], Any],
        store_key: str,
        name: str | None,
        mode: str,
        timeout: float | None,
    ) -> None:
        self._acquire = acquire
        self._store_key = store_key
        self.name = name
        self.mode = check_mode(mode)
        self.timeout = timeout
        self._entered: list[tuple[str, str | None]] = []

    def __repr__(self) -> str:
        return f"<zarrtx lock {_describe(self.name)} mode={self.mode!r} on {self._store_key!r}>"

    @property
    def held(self) -> bool:
        """True while this thread holds this lock (through this object or a nested/outer one)."""
        return self._key() in _registry()

    def _key(self) -> tuple[str, str | None]:
        return (self._store_key, None if self.name is None else self.name.lower())

    def acquire(self) -> None:
        """Acquires the lock (see the class doc); pair every call with :meth:`release`."""
        reg = _registry()
        key = self._key()
        held = reg.get(key)
        if held is not None:
            if self.mode == "w" and held.mode == "r":
                raise ZarrtxError(
                    f"this thread already holds {_describe(self.name)} in 'r' mode and now asks for 'w' on "
                    f"{self._store_key}: upgrading a readers-writer lock would deadlock (another reader may be "
                    "waiting to upgrade too); take it in 'w' mode from the start"
                )
            held.count += 1
            self._entered.append(key)
            return
        store_key = (self._store_key, None)
        if self.name is not None:
            outer = reg.get(store_key)
            if outer is not None and outer.mode == "w":
                reg[key] = _Held(self.mode, 1, None)  # implied by the store-wide "w"
                self._entered.append(key)
                return
        elif self.mode == "w":
            named = [k[1] for k, h in reg.items() if k[0] == self._store_key and k[1] is not None and h.guard is not None]
            if named:
                raise ZarrtxError(
                    f"this thread holds named lock(s) {sorted(named)} on {self._store_key} and now asks for the "
                    "store-wide lock in 'w' mode: a named lock holds the store lock in 'r' mode, so this would wait "
                    "for itself; take the store-wide 'w' lock first (named locks inside it are implied)"
                )
        guard = self._acquire(self.name, self.mode, self.timeout)
        reg[key] = _Held(self.mode, 1, guard)
        self._entered.append(key)

    def release(self) -> None:
        """Releases one acquisition; the engine lock goes when this thread's outermost acquisition is released."""
        if not self._entered:
            raise ZarrtxError(f"{_describe(self.name)} on {self._store_key} is not held by this object")
        key = self._entered.pop()
        reg = _registry()
        held = reg.get(key)
        if held is None:  # pragma: no cover - defensive
            return
        held.count -= 1
        if held.count <= 0:
            del reg[key]
            if held.guard is not None:
                held.guard.release()

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
