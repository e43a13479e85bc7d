"""Fixtures for the zarrtx interoperability tests.

The binary under test is $ZARRTX_BIN, or <repo>/target/release/zarrtx. When it is missing, tests that need it are
skipped locally with a clear reason; in CI (env CI set to a true value) they fail instead, so a broken build can
never pass as "all skipped".
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zxutil import REPO, Zarrtx  # noqa: E402

# Stores the tests create (in this process, its children and the CLI) get a 3 s lease instead of 30 s, so that a
# killed writer's part can be run again within seconds, and a 1 s publish fence.
os.environ.setdefault("ZARRTX_LEASE_MS", "3000")
os.environ.setdefault("ZARRTX_PUBLISH_FENCE_MS", "1000")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _binary_path() -> Path:
    env = os.environ.get("ZARRTX_BIN")
    if env:
        p = Path(env)
        return p if p.is_absolute() else (REPO / p)
    return REPO / "target" / "release" / "zarrtx"


@pytest.fixture(scope="session")
def zarrtx_bin() -> Path:
    """Path of the zarrtx binary; skip (locally) or fail (CI) when it is absent."""
    p = _binary_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        msg = (
            f"zarrtx binary not found at {p} (set ZARRTX_BIN or run `cargo build --release -p zarrtx-cli`)"
        )
        if _in_ci():
            pytest.fail(msg + " -- CI=true, so a missing binary is a failure, not a skip", pytrace=False)
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session")
def zx(zarrtx_bin: Path) -> Zarrtx:
    """Runner for the CLI: zx.run(*args, expect=0) asserts the exit code and returns the CompletedProcess."""
    return Zarrtx(zarrtx_bin)


@pytest.fixture
def zt():
    """The zarrtx package (skip locally, fail in CI, when it is not built)."""
    from _api_helpers import require_zarrtx

    return require_zarrtx()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where a test's store goes."""
    return tmp_path / "store.zarr"


@pytest.fixture
def store(zx: Zarrtx, tmp_path: Path) -> Path:
    """A fresh, initialized zarrtx store."""
    path = tmp_path / "store.zarr"
    zx.run("init", path)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A directory for .npy/.tif inputs."""
    d = tmp_path / "inputs"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def sd_written_store_template(tmp_path_factory) -> Path:
    """A store written by spatialdata 0.8 itself (image, labels, points, two shapes, table). Built once; copy it
    before modifying (use the `sd_written_store` fixture)."""
    import zxutil

    path = tmp_path_factory.mktemp("sdtemplate") / "sd_written.zarr"
    zxutil.write_spatialdata_fixture_store(path)
    return path


@pytest.fixture
def sd_written_store(sd_written_store_template: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "sd_written.zarr"
    shutil.copytree(sd_written_store_template, dst)
    return dst
