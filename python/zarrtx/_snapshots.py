"""A per-process cache of pinned snapshots, so that lazy reads can travel as plain data.

The dask graphs zarrtx builds for rasters and points carry only ``(store path, version, element name, ...)``: they
pickle to any process (Dask workers, ProcessPoolExecutor). Where a chunk is computed, :func:`get` opens the store
read-only once per process and pins the snapshot of that version, reusing it for every further chunk. The process
that built the graph registers its own snapshot with :func:`put`, so local computation never re-opens anything.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["get", "put"]

_MAX = 64
_lock = threading.Lock()
_cache: OrderedDict[tuple[int, str, int], Any] = OrderedDict()
_stores: dict[tuple[int, str], Any] = {}  # read-only engine handles, one per store path and process


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork time; handles of the parent are not reused in the child.
    global _lock
    _lock = threading.Lock()
    _cache.clear()
    _stores.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _key(path: str, version: int) -> tuple[int, str, int]:
    # The pid is part of the key: a forked child must not reuse handles inherited from its parent.
    return (os.getpid(), path, int(version))


def put(path: str, version: int, snapshot: Any) -> None:
    """Registers an already opened snapshot of ``path`` at ``version`` (newest entries are kept)."""
    with _lock:
        k = _key(path, version)
        _cache[k] = snapshot
        _cache.move_to_end(k)
        while len(_cache) > _MAX:
            _cache.popitem(last=False)


def get(path: str, version: int) -> Any:
    """The snapshot of the store at ``path`` pinned at ``version``, opening the store read-only if this process has
    not done so yet."""
    k = _key(path, version)
    with _lock:
        snap = _cache.get(k)
        if snap is not None:
            _cache.move_to_end(k)
            return snap
    from . import _core

    skey = (os.getpid(), path)
    with _lock:
        store = _stores.get(skey)
    if store is None:
        store = _core.Store(path, create=False, read_only=True)
        with _lock:
            store = _stores.setdefault(skey, store)
    snap = store.snapshot(int(version))
    put(path, version, snap)
    return snap
