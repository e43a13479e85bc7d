"""Images and labels written by `zarrtx add-image` / `add-labels` read back by unmodified spatialdata 0.8.0,
element by element: type, axes, dtype, values of every level, channel names, pyramid shapes, codecs, sharding and
coordinate transformations (compared with what spatialdata itself makes of the same transformation)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import zxutil
from zxutil import (
    assert_transformations_equal,
    codec_names,
    element_array,
    element_levels,
    image_data,
    iter_codecs,
    labels_data,
    load_json,
    raster_level_paths,
    read_sdata,
    save_npy,
)

pytestmark = pytest.mark.timeout(600)


def _spatial_axes(dims: str) -> list[int]:
    return [i for i, d in enumerate(dims) if d != "c"]


def expected_level_shapes(shape, dims: str, scales: list[int]) -> list[tuple]:
    shapes = [tuple(shape)]
    for f in scales:
        prev = list(shapes[-1])
        for i in _spatial_axes(dims):
            prev[i] = prev[i] // f
        shapes.append(tuple(prev))
    return shapes


class RasterCase:
    def __init__(self, id, kind, dims, shape, dtype, args=(), scales=(), channels=None, suffix=".npy"):
        self.id = id
        self.kind = kind  # "images" | "labels"
        self.dims = dims
        self.shape = shape
        self.dtype = dtype
        self.args = list(args)
        self.scales = list(scales)
        self.channels = channels
        self.suffix = suffix

    def data(self, seed: int) -> np.ndarray:
        if self.kind == "labels":
            return labels_data(seed, self.shape, self.dtype)
        return image_data(seed, self.shape, self.dtype)

    def cli_args(self) -> list[str]:
        a = ["--dims", self.dims, *self.args]
        if self.scales:
            a += ["--scales", ",".join(map(str, self.scales))]
        if self.channels:
            a += ["--channels", ",".join(self.channels)]
        return a


RASTER_CASES = [
    RasterCase("image_cyx_uint8_channels", "images", "cyx", (3, 64, 96), "uint8", channels=["dapi", "cd3", "cd8"]),
    RasterCase("image_cyx_uint16_multiscale", "images", "cyx", (2, 128, 128), "uint16", scales=[2, 2], channels=["a", "b"]),
    RasterCase("image_cyx_float32_partial_chunks", "images", "cyx", (1, 100, 70), "float32", args=["--chunks", "1,32,32"]),
    RasterCase("image_czyx_float32", "images", "czyx", (2, 8, 32, 32), "float32", channels=["c0", "c1"]),
    RasterCase("image_czyx_uint16_multiscale", "images", "czyx", (1, 16, 64, 64), "uint16", scales=[2], channels=["only"]),
    RasterCase("image_cyx_uint16_tiff", "images", "cyx", (2, 48, 64), "uint16", channels=["t0", "t1"], suffix=".tif"),
    RasterCase("labels_yx_int32", "labels", "yx", (128, 128), "int32"),
    RasterCase("labels_yx_uint16_multiscale", "labels", "yx", (128, 96), "uint16", scales=[2, 2]),
    RasterCase("labels_yx_int32_partial_chunks", "labels", "yx", (100, 80), "int32", args=["--chunks", "32,32"]),
    RasterCase("labels_zyx_int32", "labels", "zyx", (8, 64, 64), "int32"),
    RasterCase("labels_zyx_uint16_multiscale", "labels", "zyx", (8, 32, 32), "uint16", scales=[2]),
]


def write_input(inputs: Path, name: str, arr: np.ndarray, suffix: str) -> Path:
    if suffix == ".npy":
        return save_npy(inputs, name, arr)
    import tifffile

    p = inputs / f"{name}.tif"
    tifffile.imwrite(p, arr)
    return p


def add_cmd(kind: str) -> str:
    return "add-image" if kind == "images" else "add-labels"


@pytest.mark.parametrize("case", RASTER_CASES, ids=[c.id for c in RASTER_CASES])
def test_raster_roundtrip_spatialdata(zx, store, inputs, tmp_path, case: RasterCase):
    from spatialdata.models import get_channel_names

    data = case.data(seed=7)
    name = "el_" + case.id
    src = write_input(inputs, name, data, case.suffix)
    zx.run(add_cmd(case.kind), store, name, src, *case.cli_args())

    sdata = read_sdata(store)
    assert name in getattr(sdata, case.kind), f"{name} not among spatialdata's {case.kind}: {list(getattr(sdata, case.kind))}"
    other = "labels" if case.kind == "images" else "images"
    assert name not in getattr(sdata, other)
    elem = sdata[name]
    levels = element_levels(elem)

    # Level 0: exact values, dims, dtype.
    assert tuple(levels[0].dims) == tuple(case.dims)
    assert levels[0].dtype == np.dtype(case.dtype)
    np.testing.assert_array_equal(element_array(elem, 0), data)

    # Pyramid: number of levels, shapes, dtype, plausible values, and agreement with zarrtx's own reader.
    want_shapes = expected_level_shapes(case.shape, case.dims, case.scales)
    assert [tuple(l.shape) for l in levels] == want_shapes
    for lvl in range(1, len(levels)):
        arr = element_array(elem, lvl)
        assert arr.dtype == np.dtype(case.dtype)
        if case.kind == "labels":
            # Downsampled labels must only contain ids that exist at full resolution (mode/nearest, not mean).
            assert set(np.unique(arr)) <= set(np.unique(data)), f"level {lvl} invented label ids"
        else:
            assert arr.min() >= data.min() and arr.max() <= data.max()
        via_cli = zx.read(store, name, tmp_path / f"lvl{lvl}.npy", "--level", lvl)
        np.testing.assert_array_equal(arr, via_cli, err_msg=f"spatialdata and `zarrtx read --level {lvl}` disagree")

    # zarrtx's reader agrees at level 0 as well.
    np.testing.assert_array_equal(zx.read(store, name, tmp_path / "lvl0.npy"), data)

    # Channel names.
    if case.kind == "images":
        ch = list(get_channel_names(elem))
        if case.channels:
            assert ch == case.channels
        else:
            assert len(ch) == case.shape[0]

    # Default transformation: identity into "global", as spatialdata itself would write.
    from spatialdata.transformations import Identity, get_transformation

    assert_transformations_equal(get_transformation(elem, get_all=True), {"global": Identity()}, case.dims)

    zx.verify_clean(store)


def test_raster_listed_by_info(zx, store, inputs):
    zx.run("add-image", store, "img_1", save_npy(inputs, "img_1", image_data(1)), "--dims", "cyx")
    zx.run("add-labels", store, "lab_1", save_npy(inputs, "lab_1", labels_data(1)), "--dims", "yx")
    info = zx.info(store)
    assert isinstance(info["version"], int)
    by_name = {e["name"]: e for e in info["elements"]}
    assert set(by_name) == {"img_1", "lab_1"}
    assert by_name["img_1"]["type"].lower().startswith("image")
    assert by_name["lab_1"]["type"].lower().startswith("label")


# ---------------------------------------------------------------------------------------------------------------
# Codecs and sharding
# ---------------------------------------------------------------------------------------------------------------

COMPRESSIONS = [
    # (cli value, expected outer codec name or None for uncompressed, extra check on its configuration)
    ("zstd", "zstd", {}),
    ("zstd:5", "zstd", {"level": 5}),
    ("blosc", "blosc", {}),
    ("blosc:lz4:5", "blosc", {"cname": "lz4", "clevel": 5}),
    ("blosc:zstd:3", "blosc", {"cname": "zstd", "clevel": 3}),
    ("none", None, {}),
]


@pytest.mark.parametrize("kind", ["images", "labels"])
@pytest.mark.parametrize("compression,codec,config", COMPRESSIONS, ids=[c[0] for c in COMPRESSIONS])
def test_codecs(zx, store, inputs, kind, compression, codec, config):
    name = f"c_{kind}_{compression.replace(':', '_')}"
    if kind == "images":
        data, dims = image_data(3, (2, 96, 80), "uint16"), "cyx"
    else:
        data, dims = labels_data(3, (96, 80), "int32"), "yx"
    zx.run(add_cmd(kind), store, name, save_npy(inputs, name, data), "--dims", dims, "--compression", compression)

    (level0,) = raster_level_paths(store, kind, name)
    meta = load_json(store / kind / name / level0 / "zarr.json")
    names = [c["name"] for c in iter_codecs(meta)]
    compressors = [c for c in iter_codecs(meta) if c["name"] in ("zstd", "blosc", "gzip")]
    if codec is None:
        assert compressors == [], f"--compression none wrote compressors: {names}"
    else:
        assert [c["name"] for c in compressors] == [codec], f"codecs: {names}"
        conf = compressors[0].get("configuration", {})
        for k, v in config.items():
            assert conf.get(k) == v, f"{codec} configuration {conf} lacks {k}={v}"

    sdata = read_sdata(store)
    np.testing.assert_array_equal(element_array(sdata[name]), data)
    import zarr

    np.testing.assert_array_equal(zarr.open_array(str(store / kind / name / level0), mode="r")[...], data)


@pytest.mark.parametrize(
    "kind,dims,shape,chunks,shards,compression",
    [
        ("images", "cyx", (2, 128, 160), "1,32,32", "2,64,64", "zstd"),
        ("images", "czyx", (1, 8, 64, 64), "1,4,32,32", "1,8,64,64", "blosc:lz4:5"),
        ("labels", "yx", (200, 130), "32,32", "64,64", "zstd"),
        ("labels", "zyx", (8, 64, 64), "4,16,16", "8,32,32", "none"),
    ],
    ids=["image_cyx", "image_czyx", "labels_yx_partial", "labels_zyx"],
)
def test_sharding(zx, store, inputs, kind, dims, shape, chunks, shards, compression):
    name = f"sharded_{kind}_{dims}"
    dtype = "uint16" if kind == "images" else "int32"
    data = image_data(4, shape, dtype) if kind == "images" else labels_data(4, shape, dtype)
    zx.run(
        add_cmd(kind), store, name, save_npy(inputs, name, data), "--dims", dims,
        "--chunks", chunks, "--shards", shards, "--compression", compression,
    )
    (level0,) = raster_level_paths(store, kind, name)
    meta = load_json(store / kind / name / level0 / "zarr.json")
    outer = meta["codecs"]
    assert [c["name"] for c in outer] == ["sharding_indexed"], codec_names(meta)
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [int(x) for x in shards.split(",")]
    assert outer[0]["configuration"]["chunk_shape"] == [int(x) for x in chunks.split(",")]

    sdata = read_sdata(store)
    np.testing.assert_array_equal(element_array(sdata[name]), data)
    import zarr

    np.testing.assert_array_equal(zarr.open_array(str(store / kind / name / level0), mode="r")[...], data)


def test_chunks_without_sharding(zx, store, inputs):
    data = image_data(5, (3, 100, 100), "uint8")
    zx.run("add-image", store, "chunked", save_npy(inputs, "chunked", data), "--dims", "cyx", "--chunks", "1,25,50")
    (level0,) = raster_level_paths(store, "images", "chunked")
    meta = load_json(store / "images" / "chunked" / level0 / "zarr.json")
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 25, 50]
    assert "sharding_indexed" not in [c["name"] for c in meta["codecs"]]
    np.testing.assert_array_equal(element_array(read_sdata(store)["chunked"]), data)


# ---------------------------------------------------------------------------------------------------------------
# Transformations
# ---------------------------------------------------------------------------------------------------------------


# (id, kind, dims, --transform values). The expected spatialdata transformations are in _expected_transforms.
TRANSFORM_CASES = [
    ("image_scale", "images", "cyx", ["global=scale:1,2,3"]),
    ("image_translation", "images", "cyx", ["global=translation:0,10.5,-20"]),
    ("image_affine", "images", "cyx", ["global=affine:[[1,0,0,0],[0,2,0.5,10],[0,0,3,20]]"]),
    ("image_sequence", "images", "cyx", ["global=sequence:scale:1,2,2;translation:0,10,20"]),
    ("image_multi_cs", "images", "cyx", ["global=identity", "aligned=scale:1,0.5,0.5", "moved=translation:0,100,200"]),
    ("image_only_other_cs", "images", "cyx", ["section1=scale:1,4,4"]),
    ("image3d_scale", "images", "czyx", ["global=scale:1,3,2,2"]),
    ("labels_scale", "labels", "yx", ["global=scale:2,2"]),
    ("labels_affine", "labels", "yx", ["global=affine:[[2,0,10],[0,3,20]]"]),
    ("labels_sequence_multi", "labels", "yx", ["global=sequence:translation:5,5;scale:2,2", "other=identity"]),
    ("labels3d_translation", "labels", "zyx", ["global=translation:1,2,3"]),
]


def _expected_transforms(case_id: str) -> dict:
    from spatialdata import transformations as T

    cyx, yx = ("c", "y", "x"), ("y", "x")
    h = lambda m: np.array(m, dtype=float)  # noqa: E731
    return {
        "image_scale": lambda: {"global": T.Scale([1, 2, 3], axes=cyx)},
        "image_translation": lambda: {"global": T.Translation([0, 10.5, -20], axes=cyx)},
        "image_affine": lambda: {"global": T.Affine(h([[1, 0, 0, 0], [0, 2, 0.5, 10], [0, 0, 3, 20], [0, 0, 0, 1]]),
                                                    input_axes=cyx, output_axes=cyx)},
        "image_sequence": lambda: {"global": T.Sequence([T.Scale([1, 2, 2], axes=cyx),
                                                         T.Translation([0, 10, 20], axes=cyx)])},
        "image_multi_cs": lambda: {"global": T.Identity(), "aligned": T.Scale([1, 0.5, 0.5], axes=cyx),
                                   "moved": T.Translation([0, 100, 200], axes=cyx)},
        "image_only_other_cs": lambda: {"section1": T.Scale([1, 4, 4], axes=cyx)},
        "image3d_scale": lambda: {"global": T.Scale([1, 3, 2, 2], axes=("c", "z", "y", "x"))},
        "labels_scale": lambda: {"global": T.Scale([2, 2], axes=yx)},
        "labels_affine": lambda: {"global": T.Affine(h([[2, 0, 10], [0, 3, 20], [0, 0, 1]]), input_axes=yx,
                                                     output_axes=yx)},
        "labels_sequence_multi": lambda: {"global": T.Sequence([T.Translation([5, 5], axes=yx),
                                                                T.Scale([2, 2], axes=yx)]),
                                          "other": T.Identity()},
        "labels3d_translation": lambda: {"global": T.Translation([1, 2, 3], axes=("z", "y", "x"))},
    }[case_id]()


def _spatialdata_reference_transforms(tmp_path: Path, kind: str, dims: str, shape, want: dict) -> dict:
    """What spatialdata itself stores and reads back for `want` on an element of these dims (the oracle)."""
    import spatialdata as sd
    from spatialdata.models import Image2DModel, Image3DModel, Labels2DModel, Labels3DModel
    from spatialdata.transformations import get_transformation

    model = {("images", 3): Image2DModel, ("images", 4): Image3DModel, ("labels", 2): Labels2DModel,
             ("labels", 3): Labels3DModel}[(kind, len(dims))]
    arr = np.zeros(shape, dtype="uint8" if kind == "images" else "int32")
    elem = model.parse(arr, dims=tuple(dims), transformations=want)
    path = tmp_path / "sd_reference.zarr"
    shutil.rmtree(path, ignore_errors=True)
    sd.SpatialData(**{kind: {"ref": elem}}).write(str(path))
    return get_transformation(read_sdata(path)["ref"], get_all=True)


@pytest.mark.parametrize("case_id,kind,dims,specs", TRANSFORM_CASES, ids=[c[0] for c in TRANSFORM_CASES])
def test_transformations(zx, store, inputs, tmp_path, case_id, kind, dims, specs):
    from spatialdata.transformations import get_transformation

    shape = {"cyx": (1, 32, 32), "czyx": (1, 4, 16, 16), "yx": (32, 32), "zyx": (4, 16, 16)}[dims]
    data = image_data(6, shape, "uint8") if kind == "images" else labels_data(6, shape, "int32")
    name = "t_" + case_id
    args = []
    for s in specs:
        args += ["--transform", s]
    zx.run(add_cmd(kind), store, name, save_npy(inputs, name, data), "--dims", dims, *args)

    got = get_transformation(read_sdata(store)[name], get_all=True)
    want_raw = _expected_transforms(case_id)
    # 1) semantic: the same maps as the transformations we asked for.
    assert set(got) == set(want_raw)
    for cs, w in want_raw.items():
        np.testing.assert_allclose(
            got[cs].to_affine_matrix(input_axes=tuple(dims), output_axes=tuple(dims)),
            w.to_affine_matrix(input_axes=tuple(dims), output_axes=tuple(dims)),
            err_msg=f"coordinate system {cs!r}",
        )
    # 2) structural: exactly what spatialdata itself writes and reads back for the same request.
    ref = _spatialdata_reference_transforms(tmp_path, kind, dims, shape, want_raw)
    assert_transformations_equal(got, ref, dims)
    # 3) the data is untouched by the metadata.
    np.testing.assert_array_equal(element_array(read_sdata(store)[name]), data)
