"""The CLI contract seen from outside: bad input fails with exit 2 and `error: ...` and leaves the store unchanged;
rm, read, --at-version, log, verify, gc and --overwrite behave, and spatialdata agrees at every step."""
from __future__ import annotations

import json

import numpy as np
import pytest

import zxutil
from zxutil import element_array, image_data, labels_data, read_sdata, save_npy

pytestmark = pytest.mark.timeout(600)


def _snapshot_files(store):
    """Published view: the root zarr.json plus the list of visible element directories."""
    root = (store / "zarr.json").read_bytes()
    dirs = sorted(str(p.relative_to(store)) for p in store.glob("*/*") if p.is_dir() and not p.name.startswith("."))
    return root, dirs


@pytest.mark.parametrize(
    "args_builder,why",
    [
        (lambda inp: ["add-labels", "{store}", "bad name", save_npy(inp, "x1", labels_data(1, (16, 16))), "--dims", "yx"], "space in name"),
        (lambda inp: ["add-labels", "{store}", "__dunder", save_npy(inp, "x2", labels_data(1, (16, 16))), "--dims", "yx"], "leading __"),
        (lambda inp: ["add-labels", "{store}", "floaty", save_npy(inp, "x3", np.zeros((16, 16), np.float32)), "--dims", "yx"], "float labels"),
        (lambda inp: ["add-image", "{store}", "wrongdims", save_npy(inp, "x4", np.zeros((16, 16), np.uint8)), "--dims", "cyx"], "2-D data for cyx"),
        (lambda inp: ["add-image", "{store}", "nofile", inp / "does-not-exist.npy", "--dims", "cyx"], "missing input"),
        (lambda inp: ["add-image", "{store}", "badcomp", save_npy(inp, "x5", image_data(1, (1, 16, 16))), "--dims", "cyx", "--compression", "lzma:99"], "unknown codec"),
        (lambda inp: ["add-image", "{store}", "badtf", save_npy(inp, "x6", image_data(1, (1, 16, 16))), "--dims", "cyx", "--transform", "global=scale:1,2"], "scale arity"),
        (lambda inp: ["add-image", "{store}", "badch", save_npy(inp, "x7", image_data(1, (2, 16, 16))), "--dims", "cyx", "--channels", "a,b,c"], "channel count"),
    ],
    ids=["space", "dunder", "float-labels", "dims", "missing-input", "codec", "transform", "channels"],
)
def test_bad_input_exit_2_store_unchanged(zx, store, inputs, args_builder, why):
    zx.run("add-labels", store, "keep", save_npy(inputs, "keep", labels_data(9, (32, 32))), "--dims", "yx")
    before = _snapshot_files(store)
    args = [str(store) if a == "{store}" else a for a in args_builder(inputs)]
    p = zx.run(*args, expect=2)
    assert "error:" in p.stderr, f"{why}: stderr lacks 'error:': {p.stderr[-500:]}"
    assert _snapshot_files(store) == before, f"{why}: the published store changed"
    sdata = read_sdata(store)
    assert zxutil.all_names(sdata) == {"keep"}
    zx.verify_clean(store)


def test_duplicate_name_sequential(zx, store, inputs):
    src = save_npy(inputs, "a", labels_data(1, (32, 32)))
    zx.run("add-labels", store, "cells", src, "--dims", "yx")
    for cmd, name, dims, s in [("add-labels", "cells", "yx", src), ("add-labels", "CELLS", "yx", src),
                               ("add-image", "Cells", "cyx", save_npy(inputs, "b", image_data(1, (1, 32, 32))))]:
        p = zx.fails(cmd, store, name, s, "--dims", dims)
        assert "already exists" in p.stderr.lower(), p.stderr
    np.testing.assert_array_equal(element_array(read_sdata(store)["cells"]), labels_data(1, (32, 32)))


def test_overwrite_replaces(zx, store, inputs):
    a, b = labels_data(1, (32, 32)), labels_data(2, (48, 40))
    zx.run("add-labels", store, "seg", save_npy(inputs, "a", a), "--dims", "yx")
    zx.run("add-labels", store, "seg", save_npy(inputs, "b", b), "--dims", "yx", "--overwrite")
    np.testing.assert_array_equal(element_array(read_sdata(store)["seg"]), b)
    zx.verify_clean(store)


def test_rm_read_versions_log(zx, store, inputs, tmp_path):
    a, b = labels_data(1, (32, 32)), image_data(2, (2, 32, 32))
    zx.run("add-labels", store, "lab_a", save_npy(inputs, "a", a), "--dims", "yx")
    v1 = zx.info(store)["version"]
    zx.run("add-image", store, "img_b", save_npy(inputs, "b", b), "--dims", "cyx")
    v2 = zx.info(store)["version"]
    assert v2 > v1
    zx.run("rm", store, "lab_a")
    v3 = zx.info(store)["version"]
    assert v3 > v2

    assert zxutil.all_names(read_sdata(store)) == {"img_b"}
    assert {e["name"] for e in zx.info(store, "--at-version", v1)["elements"]} == {"lab_a"}
    assert {e["name"] for e in zx.info(store, "--at-version", v2)["elements"]} == {"lab_a", "img_b"}
    # Time travel: the removed element is still readable at the version where it existed (no gc yet).
    np.testing.assert_array_equal(zx.read(store, "lab_a", tmp_path / "old.npy", "--at-version", v2), a)
    np.testing.assert_array_equal(zx.read(store, "img_b", tmp_path / "b.npy"), b)
    zx.fails("read", store, "lab_a", tmp_path / "gone.npy")
    zx.fails("rm", store, "lab_a")

    log = zx.json("log", store, "--json")
    entries = log if isinstance(log, list) else log.get("entries", log.get("commits", []))
    assert len(entries) >= 3, json.dumps(log)[:1000]
    zx.verify_clean(store)
    zx.run("gc", store, "--grace-seconds", 0)
    zx.verify_clean(store)
    assert zxutil.all_names(read_sdata(store)) == {"img_b"}
    np.testing.assert_array_equal(element_array(read_sdata(store)["img_b"]), b)


def test_verify_json(zx, store, inputs):
    zx.run("add-labels", store, "lab_x", save_npy(inputs, "x", labels_data(3, (16, 16))), "--dims", "yx")
    rep = zx.json("verify", store, "--json")
    assert isinstance(rep, dict)
