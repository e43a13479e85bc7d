"""`Store.lock`: the user's lock example (shared/seeds/spatialdata-concurrent-writes.txt) and the lock's semantics.

- The seed's workflow: read an image, segment it OUTSIDE the lock, add the labels under `with store.lock():`,
  from several processes at once; the critical sections never overlap and each sees every earlier commit.
- Reentrancy in one thread: the same lock nested; "r" inside "w"; "w" inside "r" raises ZarrtxError.
- Readers-writer exclusion across threads and across OS processes: readers share, a writer waits for every
  reader, a reader waits for the writer.
- Timeouts: LockTimeout (also TimeoutError) after at least the timeout; timeout=0 tries once.
- A lock held by a process that is SIGKILLed is released by the kernel.
- Named locks: different names do not exclude each other, the same name (case-insensitively) does, a store-wide
  "w" excludes every named lock.

Cross-process holders are `_api_helpers.LockHolder` processes that report, with CLOCK_MONOTONIC timestamps, when
they wait, acquire, release or time out; the assertions order those events rather than trusting sleeps (sleeps
only open windows in which a broken lock would be caught).
"""
from __future__ import annotations

import json
import multiprocessing
import pickle
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from _api_helpers import LockHolder, read_sdata, run_tasks

pytestmark = pytest.mark.timeout(600)

BLOCKED = 0.5  # how long a "must not get the lock" attempt waits


@pytest.fixture
def store(zt, path):
    return zt.open(path)


@pytest.fixture
def holders(path):
    """Factory of LockHolder processes on the test's store; all are closed at the end."""
    made: list[LockHolder] = []

    def make(label: str = "holder") -> LockHolder:
        h = LockHolder(path, label=label)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def assert_blocked(zt, store, name=None, mode="w", timeout=BLOCKED):
    """This thread cannot get lock (name, mode) within `timeout`: LockTimeout, raised no earlier than `timeout`."""
    t0 = time.monotonic()
    with pytest.raises(zt.LockTimeout) as ei:
        with store.lock(name, mode=mode, timeout=timeout):
            pass
    elapsed = time.monotonic() - t0
    assert elapsed >= timeout, f"LockTimeout after {elapsed:.3f}s, before the timeout of {timeout}s"
    return ei.value


def assert_free(store, name=None, mode="w", timeout=10.0) -> float:
    """This thread gets lock (name, mode) within `timeout`; returns the time it took."""
    t0 = time.monotonic()
    with store.lock(name, mode=mode, timeout=timeout):
        pass
    return time.monotonic() - t0


def run_in_thread(fn, timeout: float = 60):
    """Runs fn in a thread; fails (instead of hanging the suite) when it does not return within `timeout`."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} did not return within {timeout}s (deadlock?)"
    if "error" in box:
        raise box["error"]
    return box.get("result")


# --------------------------------------------------------------------------------------------------------------
# The seed's lock example, from several processes at once
# --------------------------------------------------------------------------------------------------------------

IMAGE_SHAPE = (2, 96, 96)


def blobs_image(seed: int = 0, shape=IMAGE_SHAPE) -> np.ndarray:
    """A synthetic fluorescence image: Gaussian blobs on a dark background (uint16, c,y,x)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros(shape, dtype=np.float64)
    for ch in range(c):
        for _ in range(12):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 6)
            img[ch] += 1000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    img += rng.uniform(0, 50, shape)
    return img.astype(np.uint16)


def segment(arr: np.ndarray) -> np.ndarray:
    """Threshold + connected components (scipy only): int32 labels, 0 = background."""
    from scipy import ndimage

    mask = arr > arr.mean() + arr.std()
    labels, _ = ndimage.label(mask)
    return labels.astype(np.int32)


def segment_and_add_under_lock(path: str, worker: int, log_dir: str, hold_s: float) -> int:
    """The seed's example: read (no lock), long processing (no lock), add the result under the lock."""
    import zarrtx
    from spatialdata.models import Labels2DModel
    from spatialdata.transformations import get_transformation

    store = zarrtx.open(path)
    image = store.read_element("image1")
    channel = worker % IMAGE_SHAPE[0]
    labels_array = segment(np.asarray(image.data[channel].compute()))
    labels = Labels2DModel.parse(labels_array, dims=("y", "x"), transformations=get_transformation(image, get_all=True))
    with store.lock():
        t_in = time.monotonic()
        seen = sorted(name for name in store.elements() if name.startswith("labels"))
        version = store.add(f"labels{worker}", labels)
        time.sleep(hold_s)  # a window in which a second holder would be caught
        t_out = time.monotonic()
    Path(log_dir, f"{worker}.json").write_text(json.dumps({"worker": worker, "in": t_in, "out": t_out, "seen": seen, "version": version}))
    return worker


@pytest.mark.parametrize("start_method", ["default", "spawn"])
def test_seed_lock_example_from_several_processes(zt, store, path, tmp_path, start_method):
    """`default` is what the seed uses (fork on Linux with Python 3.12, after this process already wrote to the
    store); `spawn` starts fresh interpreters (macOS, Windows, Python >= 3.14's forkserver is similar)."""
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import Scale, get_transformation

    img = blobs_image()
    store.add(
        "image1",
        Image2DModel.parse(img, dims=("c", "y", "x"), c_coords=["dapi", "cd45"],
                           transformations={"global": Scale([0.5, 0.5], axes=("y", "x"))}),
    )
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    n = 6
    calls = [(segment_and_add_under_lock, (str(path), w, str(log_dir), 0.2), {}) for w in range(n)]
    ctx = {"mp_context": multiprocessing.get_context("spawn")} if start_method == "spawn" else {}
    assert run_tasks(ProcessPoolExecutor(max_workers=4, **ctx), calls, timeout=300) == list(range(n))

    logs = sorted((json.loads(p.read_text()) for p in log_dir.glob("*.json")), key=lambda r: r["in"])
    assert len(logs) == n
    for a, b in zip(logs, logs[1:]):
        assert b["in"] >= a["out"], f"critical sections overlap: worker {a['worker']} {a} and worker {b['worker']} {b}"
    # Inside the lock the handle is fresh: it lists exactly the labels of the workers that held the lock before.
    for i, rec in enumerate(logs):
        assert rec["seen"] == sorted(f"labels{r['worker']}" for r in logs[:i]), rec
    assert [r["version"] for r in logs] == sorted(r["version"] for r in logs)

    sdata = read_sdata(path)
    assert set(sdata.labels) == {f"labels{w}" for w in range(n)}
    want_t = get_transformation(sdata.images["image1"], get_all=True)["global"].to_affine_matrix(("y", "x"), ("y", "x"))
    for w in range(n):
        got = sdata.labels[f"labels{w}"]
        np.testing.assert_array_equal(np.asarray(got.data.compute()), segment(img[w % 2]), err_msg=f"labels{w}")
        t = get_transformation(got, get_all=True)
        np.testing.assert_allclose(t["global"].to_affine_matrix(("y", "x"), ("y", "x")), want_t)


# --------------------------------------------------------------------------------------------------------------
# Reentrancy (one thread)
# --------------------------------------------------------------------------------------------------------------


def test_nested_same_lock_is_reentrant(zt, store, holders):
    from spatialdata.models import Labels2DModel

    probe = holders("probe")

    def nested():
        with store.lock(timeout=5):
            with store.lock(timeout=5):
                with store.lock(mode="w", timeout=5):
                    store.add("inner", Labels2DModel.parse(np.ones((8, 8), np.int32), dims=("y", "x")))
            # leaving the inner levels does not release the outer one
            probe.acquire("while_outer", mode="r", timeout=0)
            probe.wait_for("while_outer", "timeout")
        return True

    assert run_in_thread(nested)
    probe.acquire("after", mode="w", timeout=30)
    probe.wait_for("after", "acquired")
    probe.release("after")
    assert "inner" in dict(store.elements())


def test_nested_named_lock_is_reentrant_case_insensitively(zt, store, holders):
    probe = holders("probe")

    def nested():
        with store.lock("Tile_7", timeout=5):
            with store.lock("tile_7", timeout=5):
                pass
            probe.acquire("while_outer", name="TILE_7", mode="w", timeout=0)
            probe.wait_for("while_outer", "timeout")
        return True

    assert run_in_thread(nested)
    probe.acquire("after", name="tile_7", mode="w", timeout=30)
    probe.wait_for("after", "acquired")


def test_read_inside_write_is_allowed(zt, store, holders):
    probe = holders("probe")

    def nested():
        with store.lock(mode="w", timeout=5):
            with store.lock(mode="r", timeout=5):
                dict(store.elements())
            # still the writer: another process can take neither mode
            probe.acquire("r_probe", mode="r", timeout=0)
            probe.wait_for("r_probe", "timeout")
        return True

    assert run_in_thread(nested)
    probe.acquire("after", mode="w", timeout=30)
    probe.wait_for("after", "acquired")


def test_write_inside_read_raises_and_keeps_the_read_lock(zt, store, holders):
    probe = holders("probe")

    def nested():
        with store.lock(mode="r", timeout=5):
            t0 = time.monotonic()
            with pytest.raises(zt.ZarrtxError) as ei:
                with store.lock(mode="w"):  # no timeout: an upgrade must be refused, not wait forever
                    pass
            assert time.monotonic() - t0 < 30
            # the read lock is still held: other readers share it, writers are kept out
            probe.acquire("r", mode="r", timeout=10)
            probe.wait_for("r", "acquired")
            probe.release("r")
            probe.acquire("w", mode="w", timeout=0)
            probe.wait_for("w", "timeout")
            return ei.value

    err = run_in_thread(nested, timeout=60)
    assert not isinstance(err, zt.LockTimeout), f"an upgrade without timeout was reported as a timeout: {err!r}"
    assert str(err), "the error has no message"
    probe.acquire("after", mode="w", timeout=30)
    probe.wait_for("after", "acquired")


def test_nested_lock_through_another_handle_of_the_same_store(zt, store, path):
    """A child function that opens the store itself (or gets a pickled copy) nests inside the parent's lock."""
    other = zt.open(path)
    copy = pickle.loads(pickle.dumps(store))

    def nested():
        with store.lock(timeout=5):
            with other.lock(timeout=5):
                with copy.lock(mode="r", timeout=5):
                    pass
        return True

    assert run_in_thread(nested)


def test_named_lock_inside_store_wide_write_lock(zt, store):
    def nested():
        with store.lock(timeout=5):
            with store.lock("tile_1", timeout=5):
                pass
        return True

    assert run_in_thread(nested)


# --------------------------------------------------------------------------------------------------------------
# Readers-writer exclusion across threads
# --------------------------------------------------------------------------------------------------------------


def test_threads_two_readers_hold_at_once(zt, store, path):
    barrier = threading.Barrier(2, timeout=30)  # broken unless both are inside at the same time
    handles = [store, zt.open(path)]  # one shared handle and one own handle
    results: dict[int, object] = {}

    def reader(i):
        try:
            with handles[i].lock(mode="r", timeout=30):
                barrier.wait()
            results[i] = True
        except BaseException as e:
            results[i] = e

    ts = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(2)]
    [t.start() for t in ts]
    [t.join(90) for t in ts]
    assert results == {0: True, 1: True}, f"two readers could not hold the lock at once: {results}"


@pytest.mark.parametrize("handle", ["shared", "own"])
def test_threads_writer_waits_for_reader_and_reader_for_writer(zt, store, path, handle):
    other = store if handle == "shared" else zt.open(path)
    log: list[tuple[str, float]] = []
    reader_in, reader_go = threading.Event(), threading.Event()

    def reader():
        with store.lock(mode="r", timeout=30):
            log.append(("r_in", time.monotonic()))
            reader_in.set()
            assert reader_go.wait(60)
            log.append(("r_out", time.monotonic()))

    def writer():
        with other.lock(mode="w", timeout=60):
            log.append(("w_in", time.monotonic()))

    rt = threading.Thread(target=reader)
    rt.start()
    assert reader_in.wait(30)
    # another thread of this process gets no write lock while the reader holds (reentrancy is per thread)
    err = run_in_thread(lambda: assert_blocked(zt, other, mode="w"))
    assert isinstance(err, TimeoutError) and isinstance(err, zt.ZarrtxError)
    # ...but it does get a read lock
    run_in_thread(lambda: assert_free(other, mode="r"))
    wt = threading.Thread(target=writer)
    wt.start()
    time.sleep(BLOCKED)
    assert [e for e, _ in log] == ["r_in"], f"the writer got in while a reader held the lock: {log}"
    reader_go.set()
    rt.join(60)
    wt.join(60)
    t = dict(log)
    assert [e for e, _ in log] == ["r_in", "r_out", "w_in"], log
    assert t["w_in"] >= t["r_out"]

    # and the other way round: a reader waits for the writer
    log.clear()
    writer_in, writer_go = threading.Event(), threading.Event()

    def writer2():
        with store.lock(mode="w", timeout=30):
            log.append(("w_in", time.monotonic()))
            writer_in.set()
            assert writer_go.wait(60)
            log.append(("w_out", time.monotonic()))

    def reader2():
        with other.lock(mode="r", timeout=60):
            log.append(("r_in", time.monotonic()))

    wt = threading.Thread(target=writer2)
    wt.start()
    assert writer_in.wait(30)
    run_in_thread(lambda: assert_blocked(zt, other, mode="r"))
    rt = threading.Thread(target=reader2)
    rt.start()
    time.sleep(BLOCKED)
    assert [e for e, _ in log] == ["w_in"], f"a reader got in while the writer held the lock: {log}"
    writer_go.set()
    wt.join(60)
    rt.join(60)
    t = dict(log)
    assert [e for e, _ in log] == ["w_in", "w_out", "r_in"], log
    assert t["r_in"] >= t["w_out"]


def test_threads_writers_exclude_each_other(zt, store, path):
    intervals: list[tuple[float, float, int]] = []
    mu = threading.Lock()

    def work(i):
        handle = store if i % 2 else zt.open(path)
        for _ in range(5):
            with handle.lock(timeout=120):
                t_in = time.monotonic()
                time.sleep(0.01)
                t_out = time.monotonic()
            with mu:
                intervals.append((t_in, t_out, i))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join(180) for t in ts]
    assert len(intervals) == 20
    intervals.sort()
    for a, b in zip(intervals, intervals[1:]):
        assert b[0] >= a[1], f"two threads held the write lock at once: {a} and {b}"


# --------------------------------------------------------------------------------------------------------------
# Readers-writer exclusion across processes
# --------------------------------------------------------------------------------------------------------------


def test_processes_two_readers_hold_at_once(zt, store, holders):
    a, b = holders("reader A"), holders("reader B")
    a.acquire("r", mode="r")
    a.wait_for("r", "acquired")
    b.acquire("r", mode="r", timeout=30)
    got_b = b.wait_for("r", "acquired")
    a.release("r")
    assert got_b["t"] < a.find("r", "released")["t"], "reader B got in only after reader A left"
    b.release("r")
    # and this process reads alongside another process
    a.acquire("r2", mode="r")
    a.wait_for("r2", "acquired")
    assert_free(store, mode="r", timeout=10)
    a.release("r2")


def test_processes_writer_waits_for_every_reader(zt, store, holders):
    r1, r2, w = holders("reader 1"), holders("reader 2"), holders("writer")
    r1.acquire("r", mode="r")
    r2.acquire("r", mode="r")
    r1.wait_for("r", "acquired")
    r2.wait_for("r", "acquired")
    w.acquire("w", mode="w")  # no timeout: waits
    w.wait_for("w", "waiting")
    time.sleep(2 * BLOCKED)
    assert w.state("w") == "waiting", "the writer got in while two readers held the lock"
    r1.release("r")
    time.sleep(2 * BLOCKED)
    assert w.state("w") == "waiting", "the writer got in while one reader still held the lock"
    r2.release("r")
    got = w.wait_for("w", "acquired", timeout=30)
    assert got["t"] >= r1.find("r", "released")["t"]
    assert got["t"] >= r2.find("r", "released")["t"]
    # while the writer holds, this process can take neither mode
    assert_blocked(zt, store, mode="r")
    assert_blocked(zt, store, mode="w")
    w.release("w")
    assert_free(store, mode="w")


def test_processes_reader_waits_for_writer(zt, store, holders):
    w, r = holders("writer"), holders("reader")
    w.acquire("w", mode="w")
    w.wait_for("w", "acquired")
    r.acquire("r", mode="r")  # no timeout: waits
    r.wait_for("r", "waiting")
    time.sleep(2 * BLOCKED)
    assert r.state("r") == "waiting", "a reader got in while a writer held the lock"
    w.release("w")
    got = r.wait_for("r", "acquired", timeout=30)
    assert got["t"] >= w.find("w", "released")["t"]
    r.release("r")


def test_processes_writers_exclude_each_other(zt, store, holders):
    a, b = holders("writer A"), holders("writer B")
    a.acquire("w", mode="w")
    a.wait_for("w", "acquired")
    b.acquire("w", mode="w")
    b.wait_for("w", "waiting")
    time.sleep(2 * BLOCKED)
    assert b.state("w") == "waiting"
    a.release("w")
    got = b.wait_for("w", "acquired", timeout=30)
    assert got["t"] >= a.find("w", "released")["t"]
    b.release("w")


# --------------------------------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w", "r"])
def test_timeout_raises_lock_timeout_after_the_timeout(zt, store, path, holders, mode):
    h = holders("writer")
    h.acquire("w", mode="w")
    h.wait_for("w", "acquired")
    err = assert_blocked(zt, store, mode=mode, timeout=1.5)
    assert isinstance(err, TimeoutError) and isinstance(err, zt.ZarrtxError)
    assert "store" in str(err).lower(), f"the message does not say which lock: {err}"
    # timeout=0 tries once
    t0 = time.monotonic()
    with pytest.raises(zt.LockTimeout):
        with store.lock(mode=mode, timeout=0):
            pass
    assert time.monotonic() - t0 < 30
    # a named lock's timeout names the lock
    err = assert_blocked(zt, store, name="tile_42", mode=mode, timeout=0.5)
    assert "tile_42" in str(err), f"the message does not name the lock: {err}"
    # in another process too, measured there
    other = holders("waiter")
    other.acquire("late", mode=mode, timeout=1.0)
    ev = other.wait_for("late", "timeout", timeout=60)
    assert ev["elapsed"] >= 1.0 and ev["is_timeout_error"], ev
    h.release("w")
    # once free, the same call succeeds at once, timeout=0 included
    with store.lock(mode=mode, timeout=0):
        pass


def test_timeout_against_another_thread(zt, store):
    held, go = threading.Event(), threading.Event()

    def holder():
        with store.lock(timeout=30):
            held.set()
            go.wait(60)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(30)
    try:
        run_in_thread(lambda: assert_blocked(zt, store, mode="w", timeout=1.0))
        run_in_thread(lambda: assert_blocked(zt, store, mode="r", timeout=0.5))
    finally:
        go.set()
        t.join(60)
    assert_free(store, timeout=10)


# --------------------------------------------------------------------------------------------------------------
# Release on process death
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,mode", [(None, "w"), (None, "r"), ("tile_3", "w")], ids=["store-w", "store-r", "named-w"]
)
def test_lock_of_a_sigkilled_process_is_released(zt, store, holders, name, mode):
    h = holders("victim")
    h.acquire("held", name=name, mode=mode)
    h.wait_for("held", "acquired")
    assert_blocked(zt, store, name=name, mode="w")  # really held
    h.kill()  # SIGKILL: no finally, no atexit
    t0 = time.monotonic()
    with store.lock(name, mode="w", timeout=5):
        took = time.monotonic() - t0
    assert took < 5
    # and another process gets it too
    h2 = holders("next")
    h2.acquire("next", name=name, mode="w", timeout=5)
    h2.wait_for("next", "acquired")


def test_sigkilled_waiter_leaves_nothing_behind(zt, store, holders):
    w, waiter = holders("writer"), holders("waiter")
    w.acquire("w", mode="w")
    w.wait_for("w", "acquired")
    waiter.acquire("r", mode="r")
    waiter.wait_for("r", "waiting")
    time.sleep(BLOCKED)
    waiter.kill()
    w.release("w")
    assert_free(store, mode="w", timeout=5)


# --------------------------------------------------------------------------------------------------------------
# Named and store-wide locks
# --------------------------------------------------------------------------------------------------------------


def test_different_names_do_not_exclude_each_other(zt, store, holders):
    h = holders("tile_1 holder")
    h.acquire("t1", name="tile_1", mode="w")
    h.wait_for("t1", "acquired")
    assert_free(store, name="tile_2", mode="w", timeout=10)
    other = holders("tile_2 holder")
    other.acquire("t2", name="tile_2", mode="w", timeout=10)
    other.wait_for("t2", "acquired")


def test_same_name_excludes_case_insensitively(zt, store, holders):
    h = holders("Tile_1 holder")
    h.acquire("t", name="Tile_1", mode="w")
    h.wait_for("t", "acquired")
    assert_blocked(zt, store, name="tile_1", mode="w")
    assert_blocked(zt, store, name="TILE_1", mode="r")
    h.release("t")
    assert_free(store, name="tile_1", mode="w")


def test_named_read_locks_share(zt, store, holders):
    h = holders("reader")
    h.acquire("r", name="cells", mode="r")
    h.wait_for("r", "acquired")
    assert_free(store, name="CELLS", mode="r")
    assert_blocked(zt, store, name="cells", mode="w")


def test_store_wide_write_lock_excludes_every_named_lock(zt, store, holders):
    h = holders("store writer")
    h.acquire("all", mode="w")
    h.wait_for("all", "acquired")
    assert_blocked(zt, store, name="tile_1", mode="w")
    assert_blocked(zt, store, name="tile_2", mode="r")
    waiter = holders("named waiter")
    waiter.acquire("t", name="tile_1", mode="w")
    waiter.wait_for("t", "waiting")
    time.sleep(2 * BLOCKED)
    assert waiter.state("t") == "waiting"
    h.release("all")
    got = waiter.wait_for("t", "acquired", timeout=30)
    assert got["t"] >= h.find("all", "released")["t"]


def test_named_lock_keeps_a_store_wide_writer_out(zt, store, holders):
    h = holders("named holder")
    h.acquire("t", name="tile_1", mode="w")
    h.wait_for("t", "acquired")
    assert_blocked(zt, store, mode="w")
    # store-wide readers are not excluded by a named lock
    assert_free(store, mode="r", timeout=10)
    h.release("t")
    assert_free(store, mode="w")
