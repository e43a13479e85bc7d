"""Many OS processes writing into one store through the zarrtx CLI, checked with unmodified spatialdata.

G1 (no lost writes): 16 processes each add a labels element -> all 16 present, data equal.
G3 (loud conflicts): 16 processes race on one name -> exactly one success, 15 "already exists"; also across
    element types and letter case.
G2 (atomic visibility): a spatialdata reader process loops while 8 writer processes add elements -> never an
    error, every listed element fully readable and equal to what its writer wrote.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import zxutil
from zxutil import element_array, expected_for_name, image_data, labels_data, read_sdata, save_npy

pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).resolve().parent


def wait_all(procs: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str, str]]:
    out = []
    deadline = time.time() + timeout
    for p in procs:
        try:
            so, se = p.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a writer process did not finish in time")
        out.append((p.returncode, so, se))
    return out


def test_16_processes_add_distinct_labels(zx, store, inputs):
    n = 16
    srcs = {f"lab_{i}": save_npy(inputs, f"lab_{i}", labels_data(i)) for i in range(n)}
    procs = [zx.popen("add-labels", store, name, src, "--dims", "yx") for name, src in srcs.items()]
    results = wait_all(procs)
    failed = [(name, rc, se) for name, (rc, _, se) in zip(srcs, results) if rc != 0]
    assert not failed, f"{len(failed)} of {n} writers failed: {failed[:3]}"

    sdata = read_sdata(store)
    assert set(sdata.labels) == set(srcs), f"spatialdata sees {len(sdata.labels)} of {n}: missing {set(srcs) - set(sdata.labels)}"
    for name in srcs:
        got = element_array(sdata[name])
        assert got.dtype == np.int32 and got.shape == (128, 128)
        np.testing.assert_array_equal(got, expected_for_name(name), err_msg=name)
    assert zx.element_names(store) == set(srcs)
    zx.verify_clean(store)


def _race(zx, store, inputs, jobs):
    """jobs: list of (command, name, data, dims). Returns per-job (rc, stdout, stderr)."""
    procs = []
    for i, (cmd, name, data, dims) in enumerate(jobs):
        src = save_npy(inputs, f"race_{i}", data)
        procs.append(zx.popen(cmd, store, name, src, "--dims", dims))
    return wait_all(procs)


def test_16_processes_race_on_one_name(zx, store, inputs):
    n = 16
    datas = [np.full((128, 128), 1000 + i, dtype=np.int32) for i in range(n)]
    results = _race(zx, store, inputs, [("add-labels", "contested", d, "yx") for d in datas])
    winners = [i for i, (rc, _, _) in enumerate(results) if rc == 0]
    losers = [(i, rc, se) for i, (rc, _, se) in enumerate(results) if rc != 0]
    assert len(winners) == 1, f"{len(winners)} writers succeeded on the same name (want exactly 1)"
    assert len(losers) == n - 1
    for i, rc, se in losers:
        assert "already exists" in se.lower(), f"loser {i} exited {rc} without 'already exists': {se[-500:]}"

    sdata = read_sdata(store)
    assert list(sdata.labels) == ["contested"]
    np.testing.assert_array_equal(element_array(sdata["contested"]), datas[winners[0]])
    zx.verify_clean(store)


def test_race_on_one_name_across_types_and_case(zx, store, inputs):
    """Names are unique across element types, case-insensitively (spatialdata requires it)."""
    jobs = []
    for i in range(8):
        if i % 2 == 0:
            jobs.append(("add-labels", ["Cells", "cells", "CELLS", "cElls"][i // 2], np.full((64, 64), i, np.int32), "yx"))
        else:
            jobs.append(("add-image", ["cells", "Cells", "CELLS", "ceLLs"][i // 2], np.full((1, 64, 64), i, np.uint8), "cyx"))
    results = _race(zx, store, inputs, jobs)
    winners = [i for i, (rc, _, _) in enumerate(results) if rc == 0]
    assert len(winners) == 1, f"{len(winners)} writers succeeded on names equal up to case/type"
    for i, (rc, _, se) in enumerate(results):
        if rc != 0:
            assert "already exists" in se.lower(), se[-500:]
    sdata = read_sdata(store)  # would raise if two case-variants were both published
    names = zxutil.all_names(sdata)
    assert len(names) == 1 and next(iter(names)).lower() == "cells"
    zx.verify_clean(store)


def test_reader_loop_while_8_writers_add(zx, store, inputs, tmp_path):
    """A spatialdata reader in its own process never fails and never sees incomplete data while 8 writer
    processes add elements. Writers keep going until the reader has completed several reads during the writes, so
    the two really overlap however fast either side is."""
    lanes, min_per_lane, max_per_lane, min_reads_during = 8, 3, 24, 4

    stop, report = tmp_path / "stop", tmp_path / "reader.json"
    progress = Path(str(stop) + ".progress")
    reader = subprocess.Popen(
        [sys.executable, str(HERE / "reader_loop.py"), str(store), str(stop), str(report), "--min-iterations", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ready = Path(str(stop) + ".ready")
    deadline = time.time() + 120
    while not ready.exists():  # let the reader import spatialdata and read the empty store once
        assert reader.poll() is None, f"reader process died early: {reader.communicate()[1][-2000:]}"
        assert time.time() < deadline, "reader process did not start within 120 s"
        time.sleep(0.1)

    def reads_done() -> int:
        """Reads completed by the reader that saw at least one element (i.e. during or after the writes)."""
        try:
            return int(progress.read_text())
        except (OSError, ValueError):
            return 0

    reads_at_start = 0
    failures: list[str] = []
    written: list[str] = []
    lock = threading.Lock()

    def lane_worker(lane: int):
        # Names follow zxutil.expected_for_name, so the reader can check every element's data on its own.
        for k in range(max_per_lane):
            if k >= min_per_lane and reads_done() - reads_at_start >= min_reads_during:
                break
            seed = lane * 1000 + k
            kind = ("lab", "big", "img")[k % 3]
            name = f"{kind}_{seed}"
            data = expected_for_name(name)
            src = save_npy(inputs, name, data)
            if kind == "img":
                argv = zx.argv("add-image", store, name, src, "--dims", "cyx")
            elif kind == "big":
                argv = zx.argv("add-labels", store, name, src, "--dims", "yx", "--chunks", "256,256")
            else:
                argv = zx.argv("add-labels", store, name, src, "--dims", "yx")
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
            with lock:
                if p.returncode != 0:
                    failures.append(f"{name}: exit {p.returncode}: {p.stderr[-300:]}")
                else:
                    written.append(name)

    threads = [threading.Thread(target=lane_worker, args=(lane,)) for lane in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reads_during = reads_done() - reads_at_start
    stop.touch()
    so, se = reader.communicate(timeout=600)
    assert reader.returncode == 0, f"reader process crashed: {se[-2000:]}"
    rep = json.loads(report.read_text())

    assert not failures, failures
    assert rep["n_errors"] == 0, "spatialdata reader saw errors while writers were running:\n" + "\n".join(rep["errors"][:5])
    counts = rep["counts"]
    assert all(a <= b for a, b in zip(counts, counts[1:])), f"element count went backwards: {counts}"
    assert counts[-1] == len(written), f"final read saw {counts[-1]} of {len(written)} elements"
    # The reads really overlapped the writes (otherwise the test proved nothing).
    assert reads_during >= 2, f"only {reads_during} reads completed while writers ran"
    intermediate = [c for c in counts if 0 < c < len(written)]
    assert len(intermediate) >= 2, f"reader saw too few intermediate states: counts {counts}"

    sdata = read_sdata(store)
    assert zxutil.all_names(sdata) == set(written)
    zx.verify_clean(store)
