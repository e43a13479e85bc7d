"""One image or labels element written by many workers at once, through the engine's write plans.

``Store.add(..., n_jobs=K, executor=...)`` and ``zarrtx.dask.store`` both land here. The plan is driven from the
calling process; only the part writes run elsewhere:

1. ``create_plan`` (caller): validates the element and the name (``ElementExists`` now, before any pixel is
   written) and cuts level 0 into parts of whole write units (chunks, or shards when sharded), so no chunk or shard
   file ever has two writers.
2. ``write_part`` (workers): every part is written by one task, on a thread, a process of a
   ``concurrent.futures.Executor`` or a Dask worker. The task reopens the store by path (a ``Store`` pickles to its
   path and options; workers open it with ``create=False``, so a worker that does not see the store at the same
   path fails loudly instead of creating an empty one) and writes exactly its part: a numpy part as one array, a
   dask part streamed block by block (a few blocks computed at a time, never the whole part) or, on a Dask cluster,
   from the part's blocks computed by the cluster's own graph where the task runs. A part that fails is run once
   more (the engine's resume: the failed attempt's files are removed first, finished parts are never rewritten);
   if it fails again its exception is raised in the caller, nothing is committed and the element stays invisible
   (``Store.gc`` reclaims the abandoned plan after its grace period, or ``zarrtx.dask.resume`` finishes it).
3. ``commit_plan`` (caller): computes the pyramid from level 0 on disk and publishes the element in one commit.

Nothing here knows spatialdata beyond what ``_raster`` already validates.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import InvalidElement

__all__ = [
    "PlanSource",
    "add_raster_parallel",
    "choose_parts",
    "create_plan",
    "resolve_workers",
    "run_plan",
    "write_part_task",
    "write_part_from_blocks",
]

# A part is sized so that the memory of the worker writing it stays small: a Dask task holds all of its part's
# blocks (its dependencies) at once, and a numpy part travels whole to a process. 16 MiB parts keep a Dask worker
# (about 165 MiB with Python, numpy, dask and distributed loaded) under 256 MiB while it writes; there are at least
# PARTS_PER_WORKER parts per worker so that a slow worker does not hold up the commit (load balance), and at most
# MAX_PARTS (every part writer reads the plan, whose size grows with the part count), so parts grow beyond 16 MiB
# only for arrays beyond 64 GiB.
PART_TARGET_BYTES = 16 << 20
PARTS_PER_WORKER = 2
MAX_PARTS = 4096
# One run and one retry per part.
ATTEMPTS = 2
# Blocks of a dask part computed together in a worker (at most this many bytes at once, at least one block).
_STREAM_WINDOW_BYTES = 64 << 20

_EXECUTOR_NAMES = ("threads", "processes")


# ----------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------


def is_client(obj: Any) -> bool:
    """True for a ``distributed.Client`` (without importing distributed unless it is already loaded)."""
    import sys

    mod = sys.modules.get("distributed")
    if mod is None:
        return False
    return isinstance(obj, mod.Client)


def check_n_jobs(n_jobs: Any) -> int | None:
    """``None``, a positive int, or ``-1`` (every core) -> ``None`` or a positive int."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or (int(n_jobs) < 1 and n_jobs != -1):
        raise InvalidElement(
            f"n_jobs={n_jobs!r} is not valid: pass a number of workers >= 1, -1 for every core, or None"
        )
    return (os.cpu_count() or 1) if int(n_jobs) == -1 else int(n_jobs)


def check_executor(executor: Any) -> None:
    if executor is None or isinstance(executor, cf.Executor) or is_client(executor):
        return
    if isinstance(executor, str) and executor in _EXECUTOR_NAMES:
        return
    raise InvalidElement(
        f"executor={executor!r} is not valid: pass 'threads', 'processes', a concurrent.futures.Executor "
        "(ThreadPoolExecutor, ProcessPoolExecutor, ...) or a distributed.Client"
    )


def client_threads(client: Any) -> int:
    """The number of worker threads of a Dask cluster (at least 1)."""
    try:
        return max(1, sum(int(n) for n in client.nthreads().values()))
    except Exception:  # pragma: no cover - a client without workers yet
        return 1


def resolve_workers(n_jobs: int | None, executor: Any) -> int:
    """How many parts can be written at once: ``n_jobs`` when given, else the executor's size."""
    if n_jobs is not None:
        return n_jobs
    if is_client(executor):
        return client_threads(executor)
    if isinstance(executor, cf.Executor):
        n = getattr(executor, "_max_workers", None)
        if isinstance(n, int) and n > 0:
            return n
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------------------------


def write_unit(
    dims: Sequence[str], shape: Sequence[int], chunks: Sequence[int] | None, shards: Sequence[int] | None
) -> list[int]:
    """The plan's write unit: the shard shape when sharded, else the chunk shape (given or the engine's default)."""
    if shards:
        return [int(s) for s in shards]
    if chunks:
        return [int(c) for c in chunks]
    from . import _core

    return list(_core.default_raster_chunks([str(d) for d in dims], [int(s) for s in shape]))


def choose_parts(shape: Sequence[int], unit: Sequence[int], itemsize: int, workers: int) -> int:
    """At least ``PARTS_PER_WORKER`` parts per worker and parts of at most about ``PART_TARGET_BYTES`` (up to
    ``MAX_PARTS`` parts), but never more parts than write units (a unit is never split between writers)."""
    units = 1
    for s, u in zip(shape, unit, strict=True):
        units *= max(1, math.ceil(int(s) / max(int(u), 1)))
    nbytes = int(np.prod([int(s) for s in shape], dtype=np.float64)) * int(itemsize)
    want = max(PARTS_PER_WORKER * max(int(workers), 1), min(math.ceil(nbytes / PART_TARGET_BYTES), MAX_PARTS), 1)
    return int(min(want, units))


def region_slices(region: Sequence[Sequence[int]]) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in region)


class PlanSource:
    """Level 0 of the element: a numpy array (in the caller's memory) or a dask array (lazy), with the plan's
    dtype. ``payload(i)`` is what the task writing part ``i`` receives."""

    def __init__(self, data: Any, dtype: Any) -> None:
        self.data = data
        self.dtype = np.dtype(dtype)
        self.is_numpy = isinstance(data, np.ndarray)

    def payload(self, region: Sequence[Sequence[int]], *, pickled: bool) -> Any:
        sub = self.data[region_slices(region)]  # a numpy view, or a lazy dask slice
        if self.is_numpy or not pickled:
            return sub
        import dask

        (sub,) = dask.optimize(sub)  # only the blocks this part needs travel with the task
        return sub


def _shifted_blocks(
    arr: Any, dtype: np.dtype, start: Sequence[int], window_bytes: int = _STREAM_WINDOW_BYTES
) -> Iterator[tuple[list[int], np.ndarray]]:
    """``(absolute offset, block)`` for every block of the dask array ``arr`` (a part's region starting at
    ``start``), computed a few at a time with the synchronous scheduler in the calling thread (the worker is
    the unit of parallelism; no thread pool inherited through fork is ever used)."""
    from ._raster import iter_dask_blocks

    return iter_dask_blocks(arr, dtype, window_bytes, origin=start, scheduler="sync")


# ----------------------------------------------------------------------------------------------------------------
# Worker side (module-level: picklable by reference for processes, forkserver/spawn and Dask workers)
# ----------------------------------------------------------------------------------------------------------------

_WORKER_STORES: dict[tuple[Any, ...], Any] = {}
_WORKER_LOCK = threading.Lock()


def _reinit_after_fork() -> None:  # a lock inherited through fork may be held by a thread that is gone
    global _WORKER_LOCK
    _WORKER_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reinit_after_fork)

# Sources of the process pools run_local creates with the "fork" start method: registered before the pool forks its
# workers, which then find them here (inherited memory, copy-on-write) instead of receiving pickled parts. A dask
# array parsed from an in-memory numpy array (spatialdata's parse) embeds the whole array in its graph, and every
# pickled part would carry all of it.
_FORK_SOURCES: dict[str, PlanSource] = {}


class ForkedSource:
    """A reference to a source in ``_FORK_SOURCES`` of the forked worker."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __reduce__(self) -> tuple[Any, ...]:
        return (ForkedSource, (self.token,))


def _worker_handle(store: Any) -> Any:
    """The engine handle of ``store`` in this process, opened once per process with ``create=False``."""
    options = dict(getattr(store, "_options", {}))
    options["create"] = False
    key = (os.getpid(), type(store).__name__, store.path, tuple(sorted(options.items())))
    with _WORKER_LOCK:
        s = _WORKER_STORES.get(key)
        if s is None:
            try:
                s = type(store)(store.path, **options)
            except Exception as e:
                _note(
                    e,
                    f"zarrtx: this worker (host {_hostname()}, pid {os.getpid()}) cannot open the store at "
                    f"{store.path}; every worker must see the store at the same path (a shared filesystem)",
                )
                raise
            _WORKER_STORES[key] = s
    return s._handle()


def _write_part(h: Any, plan_id: str, part: int, **data: Any) -> dict[str, Any]:
    """``h.write_part``, waiting while an earlier attempt's writer still holds the part: a writer that died (a
    crashed worker whose part is retried, a task the cluster re-ran) keeps its claim until its lease expires, which
    the engine reports as a conflict. A part still claimed well after the lease timeout has a live writer elsewhere:
    that conflict stands."""
    from .errors import Conflict

    deadline = time.monotonic() + 2 * h.lease_ms() / 1000 + 5
    while True:
        try:
            return dict(h.write_part(plan_id, int(part), **data))
        except Conflict as e:
            if "lease is alive" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def write_part_task(
    store: Any, plan_id: str, part: int, region: Sequence[Sequence[int]], payload: Any, dtype: str
) -> dict[str, Any]:
    """Writes part ``part`` of plan ``plan_id`` from ``payload``: a numpy array of exactly the part's region, or a
    dask array of it (streamed block by block). Returns the engine's part record (``written`` is False when the
    part was already done: nothing is rewritten)."""
    h = _worker_handle(store)
    dt = np.dtype(dtype)
    if isinstance(payload, ForkedSource):
        source = _FORK_SOURCES.get(payload.token)
        if source is None:  # pragma: no cover - only pools forked after the registration get ForkedSource
            raise RuntimeError("zarrtx: this worker was not forked from the process that holds the data")
        payload = source.payload(region, pickled=False)
    if isinstance(payload, np.ndarray):
        return _write_part(h, plan_id, part, data=np.ascontiguousarray(payload, dtype=dt))
    start = [int(a) for a, _ in region]
    return _write_part(h, plan_id, part, blocks=_shifted_blocks(payload, dt, start))


def write_part_from_blocks(
    store: Any, plan_id: str, part: int, offsets: Sequence[Sequence[int]], blocks: Sequence[Any], dtype: str
) -> dict[str, Any]:
    """The Dask task of one part: ``blocks`` are the part's blocks, already computed by the cluster (the task's
    dependencies), ``offsets`` their absolute positions. Unaligned blocks are assembled by the engine."""
    h = _worker_handle(store)
    dt = np.dtype(dtype)
    pairs = (
        (list(map(int, o)), np.ascontiguousarray(np.asarray(b), dtype=dt))
        for o, b in zip(offsets, blocks, strict=True)
    )
    return _write_part(h, plan_id, part, blocks=pairs)


def _hostname() -> str:
    import socket

    try:
        return socket.gethostname()
    except Exception:  # pragma: no cover
        return "?"


def _note(exc: BaseException, text: str) -> None:
    add = getattr(exc, "add_note", None)  # Python >= 3.11
    if add is not None:
        try:
            add(text)
        except Exception:  # pragma: no cover
            pass


def _failure_note(exc: BaseException, plan: dict[str, Any], part: int, attempts: int) -> None:
    _note(
        exc,
        f"zarrtx: part {part} of write plan {plan['plan_id']} ('{plan.get('name') or plan.get('path')}') failed {attempts} time(s); nothing "
        "was committed and the element is not in the store. The plan's finished parts are kept: finish it with "
        "zarrtx.dask.resume(store, plan_id, data), or let Store.gc reclaim it after its grace period.",
    )


# ----------------------------------------------------------------------------------------------------------------
# Caller side
# ----------------------------------------------------------------------------------------------------------------


def create_plan(
    store: Any,
    name: str,
    kind: str,
    dims: Sequence[str],
    *,
    shape: Sequence[int],
    dtype: str,
    parts: int | list[Any] | None,
    workers: int,
    overwrite: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """Checks the name and creates the plan (``parts=None``: ``choose_parts``). ``spec``: channel_names,
    transformations, scale_factors, chunks, shards, compression."""
    h = store._handle()
    spec = {k: v for k, v in spec.items() if v is not None}
    if parts is None:
        unit = write_unit(dims, shape, spec.get("chunks"), spec.get("shards"))
        parts = choose_parts(shape, unit, np.dtype(dtype).itemsize, workers)
    return dict(
        h.create_plan(
            name, kind, list(dims), shape=[int(s) for s in shape], dtype=dtype, parts=parts, overwrite=overwrite, **spec
        )
    )


def run_plan(
    store: Any,
    plan: dict[str, Any],
    source: PlanSource,
    *,
    n_jobs: int | None = None,
    executor: Any = None,
    only: Sequence[int] | None = None,
) -> Any:
    """Writes the parts of ``plan`` (all, or those listed in ``only``; finished ones are skipped by the engine)
    with ``executor`` and commits. Returns what the handle's ``commit_plan`` returns: the version (a store's
    element plan) or the commit (a hierarchy's array plan)."""
    workers = resolve_workers(n_jobs, executor)
    todo = list(range(len(plan["parts"]))) if only is None else [int(i) for i in only]
    if todo:
        if is_client(executor):
            run_on_client(executor, store, plan, source, todo)
        else:
            run_local(store, plan, source, todo, executor=executor, workers=workers)
    return store._handle().commit_plan(plan["plan_id"])


def run_local(
    store: Any, plan: dict[str, Any], source: PlanSource, todo_parts: Sequence[int], *, executor: Any, workers: int
) -> None:
    """Runs the part writes on threads, processes or a given ``concurrent.futures.Executor``; at most two tasks
    per worker are queued at a time (a numpy part is copied when it is sent to a process). A failed part is
    retried once; a broken process pool that this function owns is replaced for the retries."""
    owned = executor is None or isinstance(executor, str)
    use_processes = executor == "processes"

    def make() -> cf.Executor:
        if use_processes:
            return cf.ProcessPoolExecutor(workers)
        return cf.ThreadPoolExecutor(workers, thread_name_prefix="zarrtx-part")

    fork_token: str | None = None
    if owned and use_processes:
        import multiprocessing
        import uuid

        if multiprocessing.get_start_method(allow_none=False) == "fork":
            fork_token = uuid.uuid4().hex
            _FORK_SOURCES[fork_token] = source  # before the pool forks its workers (at the first submit)
    pool: cf.Executor = make() if owned else executor
    in_process = isinstance(pool, cf.ThreadPoolExecutor)
    parts = plan["parts"]
    plan_id = plan["plan_id"]
    dtype = source.dtype.name
    todo: deque[int] = deque(todo_parts)
    attempts = [0] * len(parts)
    running: dict[cf.Future[Any], int] = {}
    window = max(1, 2 * workers)
    failure: tuple[int, BaseException] | None = None

    def submit(i: int) -> cf.Future[Any]:
        nonlocal pool
        if fork_token is not None:
            payload: Any = ForkedSource(fork_token)
        else:
            payload = source.payload(parts[i], pickled=not in_process)
        args = (write_part_task, store, plan_id, i, parts[i], payload, dtype)
        try:
            return pool.submit(*args)
        except cf.BrokenExecutor:
            if not owned:
                raise
            pool.shutdown(wait=False, cancel_futures=True)
            pool = make()
            return pool.submit(*args)

    interrupted = True
    try:
        while (todo or running) and failure is None:
            while todo and len(running) < window:
                i = todo.popleft()
                attempts[i] += 1
                running[submit(i)] = i
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    continue
                if attempts[i] < ATTEMPTS:
                    todo.appendleft(i)  # resume it: the engine removes the failed attempt's files first
                elif failure is None:
                    failure = (i, exc)
        interrupted = False
    finally:
        for fut in running:
            fut.cancel()
        if running and not interrupted:
            cf.wait(list(running))  # no writer of this plan outlives a failed call
        if owned:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        if fork_token is not None:
            _FORK_SOURCES.pop(fork_token, None)
    if failure is not None:
        i, exc = failure
        _failure_note(exc, plan, i, attempts[i])
        raise exc


def _part_blocks(darr: Any, region: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[Any]]:
    """The delayed blocks of ``darr[region]`` and their absolute offsets, in C order. Blocks of ``darr`` that
    straddle two parts are computed once and sliced for each (same graph keys)."""
    sub = darr[region_slices(region)]
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in sub.chunks]
    delayed = sub.to_delayed(optimize_graph=False)
    offsets, blocks = [], []
    for idx in np.ndindex(*sub.numblocks):
        offsets.append([int(region[a][0]) + int(starts[a][i]) for a, i in enumerate(idx)])
        blocks.append(delayed[idx])
    return offsets, blocks


def run_on_client(client: Any, store: Any, plan: dict[str, Any], source: PlanSource, todo_parts: Sequence[int]) -> None:
    """Runs the part writes as Dask tasks on ``client``'s workers, ``retries=1`` each.

    A dask source becomes one task per part whose dependencies are the part's blocks of the source's own graph,
    so the blocks are computed on the workers and gathered where the part is written; the scheduler never sees
    pixel data except what the source graph itself embeds. A numpy source is scattered to the workers part by
    part (at most two parts per worker thread in flight), straight from the client."""
    import uuid

    import dask
    from distributed import as_completed

    parts = plan["parts"]
    run = uuid.uuid4().hex[:8]  # task keys unique per run (a resumed plan must not meet its failed tasks)
    plan_id = plan["plan_id"]
    dtype = source.dtype.name
    live: dict[Any, tuple[int, Any]] = {}  # task key -> (part, future)
    failure: tuple[int, BaseException] | None = None
    try:
        if not source.is_numpy:
            tasks = []
            for i in todo_parts:
                offsets, blocks = _part_blocks(source.data, parts[i])
                tasks.append(
                    dask.delayed(write_part_from_blocks, pure=False)(
                        store, plan_id, i, offsets, blocks, dtype, dask_key_name=f"zarrtx-part-{plan_id}-{i}-{run}"
                    )
                )
            futures = list(client.compute(tasks, retries=ATTEMPTS - 1))
            live = {f.key: (i, f) for i, f in zip(todo_parts, futures, strict=True)}
            for fut in as_completed(futures):
                i, _ = live.pop(fut.key)
                if fut.status == "error":
                    failure = (i, fut.exception())
                    break
        else:
            todo = deque(todo_parts)
            window = max(1, 2 * client_threads(client))
            ac = as_completed()

            def submit(i: int) -> None:
                part = np.ascontiguousarray(source.data[region_slices(parts[i])], dtype=source.dtype)
                [data] = client.scatter([part], hash=False)
                fut = client.submit(
                    write_part_task, store, plan_id, i, parts[i], data, dtype,
                    key=f"zarrtx-part-{plan_id}-{i}-{run}", pure=False, retries=ATTEMPTS - 1,
                )
                live[fut.key] = (i, fut)  # the task holds the scattered part; it is freed with the task
                ac.add(fut)

            while todo and ac.count() < window:
                submit(todo.popleft())
            for fut in ac:
                i, _ = live.pop(fut.key)
                if fut.status == "error":
                    failure = (i, fut.exception())
                    break
                if todo:
                    submit(todo.popleft())
    finally:
        if live:
            client.cancel([f for _, f in live.values()])
    if failure is not None:
        i, exc = failure
        _failure_note(exc, plan, i, ATTEMPTS)
        raise exc


# ----------------------------------------------------------------------------------------------------------------
# Store.add(..., n_jobs=, executor=)
# ----------------------------------------------------------------------------------------------------------------


def add_raster_parallel(
    store: Any, name: str, element: Any, *, overwrite: bool, n_jobs: Any, executor: Any
) -> int | None:
    """The parallel path of ``Store.add`` for an image or labels element. Returns the version, or None when the
    element is to be written by the ordinary single-writer path (``n_jobs`` of 1 without an executor, or a
    DataTree with given lower levels)."""
    n = check_n_jobs(n_jobs)
    check_executor(executor)
    if executor is None and (n is None or n <= 1):
        return None
    from ._raster import _levels, add_raster_args

    levels = _levels(element)
    if len(levels) > 1:
        warnings.warn(
            f"'{name}': a DataTree with lower levels is written by one writer and its levels are stored as given "
            "(as spatialdata.write stores them); n_jobs / executor apply to single-scale images and labels. To "
            "write a large pyramid in parallel, pass the full-resolution level to zarrtx.dask.store(..., "
            "scale_factors=[...]): the levels are then computed by zarrtx at the commit (mean for images, mode "
            "for labels)",
            UserWarning,
            stacklevel=3,
        )
        return None
    kind, dims, kwargs = add_raster_args(name, element)
    blocks = kwargs.pop("blocks", None)
    if blocks is not None:
        blocks.close()  # a generator that was never started: nothing computed
        data = levels[0].data
        shape = [int(s) for s in kwargs.pop("shape")]
        dtype = kwargs.pop("dtype")
    else:
        data = kwargs.pop("data")
        shape = [int(s) for s in data.shape]
        from ._raster import _dtype_name

        dtype = _dtype_name(name, data.dtype)
    workers = resolve_workers(n, executor)
    plan = create_plan(
        store, name, kind, dims, shape=shape, dtype=dtype, parts=None, workers=workers, overwrite=overwrite, **kwargs
    )
    return int(run_plan(store, plan, PlanSource(data, dtype), n_jobs=n, executor=executor))
