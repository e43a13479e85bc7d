"""What the benchmarks share, so that no benchmark imports another: where the zarrtx binary and the peer programs
(shared/peer) are, section headings, the test image (the one shared/peer/peer_array_write.py writes) and its
zstd encode-only limit, and a .npy file as a lazily read array (NpySource, for dask and hdmf-zarr).
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def find_peer_dir(marker: str = "peer_spatialdata.py") -> Path:
    """shared/peer (ZARRTX_PEER_DIR, next to the checkout, or /work/shared/peer): the first that holds `marker`."""
    for c in (os.environ.get("ZARRTX_PEER_DIR"), REPO.parent / "shared" / "peer", Path("/work/shared/peer")):
        if c and (Path(c) / marker).is_file():
            return Path(c)
    sys.exit("bench: cannot find shared/peer (set ZARRTX_PEER_DIR)")


def zarrtx_bin() -> str:
    b = os.environ.get("ZARRTX_BIN") or str(REPO / "target" / "release" / "zarrtx")
    if not os.access(b, os.X_OK):
        sys.exit(f"bench: no zarrtx binary at {b}; run `cargo build --release -p zarrtx-cli`")
    return b


def hr(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def make_image(side: int) -> np.ndarray:
    """Exactly the image peer_array_write.py writes."""
    yy, xx = np.mgrid[0:side, 0:side // 8]
    tile = ((np.sin(yy / 50.0) + np.cos(xx / 37.0)) * 1000 + 2000).astype(np.uint16)
    img = np.tile(tile, (1, 8))
    img += np.random.default_rng(0).integers(0, 64, img.shape, dtype=np.uint16)
    return img


def bench_encode_limit(img: np.ndarray, chunk: int = 1024, threads: int | None = None) -> dict:
    import zstandard

    threads = threads or os.cpu_count() or 1
    blocks = [(y, x) for y in range(0, img.shape[0], chunk) for x in range(0, img.shape[1], chunk)]
    local = {}

    def enc(yx):
        import threading

        c = local.get(threading.get_ident())
        if c is None:
            c = local[threading.get_ident()] = zstandard.ZstdCompressor(level=0)
        y, x = yx
        return len(c.compress(np.ascontiguousarray(img[y:y + chunk, x:x + chunk]).tobytes()))

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(enc, blocks[: threads]))  # warm-up
        t0 = time.perf_counter()
        sizes = list(ex.map(enc, blocks))
        dt = time.perf_counter() - t0
    return {"writer": f"zstd-0 encode only ({threads} threads)", "wall_s": dt, "compressed_bytes": sum(sizes)}


class NpySource:
    """A .npy file as an array-like for dask.array.from_array: every read maps the file, copies the block and
    unmaps it, so a worker holds only the blocks it is working on (no file pages stay mapped). Pickles to its path."""

    def __init__(self, path: str, channel: int | None = None) -> None:
        a = np.load(path, mmap_mode="r")
        self.path, self.channel = str(path), channel
        shape = a.shape if channel is None else a.shape[1:]
        self.shape, self.dtype, self.ndim = tuple(shape), a.dtype, len(shape)
        del a

    def __getitem__(self, key):
        m = np.load(self.path, mmap_mode="r")
        if self.channel is not None:
            m = m[self.channel]
        out = np.array(m[key])
        del m
        return out
