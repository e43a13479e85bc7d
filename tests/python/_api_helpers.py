"""Helpers for the tests of the Python API (`tests/python/test_api_*.py`).

- `require_zarrtx` (behind the `zt` fixture of conftest.py): the `zarrtx` package, or a skip (locally) / failure
  (CI) when it is not built;
- `store_fingerprint`: what "the store is unchanged" means in the bad-input tests;
- `LockHolder`: a separate OS process that takes and releases `Store.lock` on command and reports, with
  timestamps, when it waited, acquired, released or timed out (used for the cross-process lock tests);
- `run_fresh`: run a snippet in a fresh interpreter.

This file is also a script (the lock holder runs it):

    python _api_helpers.py lock-server STORE

reads one JSON command per line on stdin and writes one JSON event per line on stdout:

    {"op": "acquire", "id": "a", "name": null, "mode": "w", "timeout": null}
        -> {"id": "a", "event": "waiting", "t": ...}, then "acquired" (t), or "timeout" (t, elapsed, message),
           or "error" (type, message). Each acquire runs in its own thread of the holder process.
    {"op": "release", "id": "a"} -> {"id": "a", "event": "released", "t": ...} (t taken just before the lock is
           let go), then {"id": "a", "event": "exited"} once the `with` block has been left.
    {"op": "exit"}

Times are `time.monotonic()`, which on Linux is CLOCK_MONOTONIC: one clock for every process of the machine, so
the parent can order events of different processes.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def load_zarrtx():
    """The zarrtx package, or raise ImportError saying what is missing."""
    import zarrtx

    for attr in ("open", "ZarrtxError", "LockTimeout", "ElementExists"):
        if not hasattr(zarrtx, attr):
            raise ImportError(f"zarrtx has no attribute {attr!r} (the Python package is incomplete)")
    return zarrtx


def require_zarrtx():
    """The zarrtx package; skips the test locally (fails it in CI) when the package is not built/installed."""
    import pytest

    try:
        return load_zarrtx()
    except ImportError as e:
        msg = f"the zarrtx Python package is not usable ({e}); build it with `bash scripts/build-python.sh --dev`"
        if in_ci():
            pytest.fail(msg + " -- CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(msg)


def quiet() -> None:
    import logging

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)


def read_sdata(path) -> Any:
    """spatialdata.read_zarr, the real unmodified reader."""
    import spatialdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spatialdata.read_zarr(str(path))


def sdata_names(sdata) -> dict[str, str]:
    """name -> element type of every element of a SpatialData object."""
    out = {}
    for kind in ("images", "labels", "points", "shapes", "tables"):
        for name in getattr(sdata, kind).keys():
            out[name] = kind
    return out


def published_tree_digest(path) -> dict[str, str]:
    """sha256 of every file of the store outside `.zarrtx/` (what plain readers see: root zarr.json and the
    element trees), keyed by relative path."""
    root = Path(path)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] == ".zarrtx":
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not (not rel_dir.parts and d == ".zarrtx")]
        for f in filenames:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def store_fingerprint(store, path) -> tuple:
    """(version, elements, digest of the published files) of the store at `path` through handle `store`: equal
    before and after means the store is unchanged."""
    return store.version, dict(store.elements()), published_tree_digest(path)


def run_fresh(code: str, *args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python interpreter (this venv), with tests/python on sys.path; asserts exit 0."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(HERE), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full_env["PYTHONWARNINGS"] = "ignore"
    if env:
        full_env.update(env)
    p = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"fresh interpreter exited {p.returncode}\n--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-5000:]}"
    return p


# --------------------------------------------------------------------------------------------------------------
# Executors that fail instead of hanging
# --------------------------------------------------------------------------------------------------------------


def run_tasks(executor, calls, timeout: float = 300, stall: float = 60) -> list:
    """Submits `calls` (a list of (fn, args, kwargs)) to `executor` and returns the results in submission order.

    Fails — instead of hanging the suite — when the batch takes longer than `timeout` seconds or no task finishes
    for `stall` seconds (a stuck worker: e.g. a lock or thread pool inherited in a locked state through fork). The
    worker processes of a ProcessPoolExecutor are then SIGKILLed so that the test can end. The executor is shut
    down in every case; a task's exception propagates."""
    import concurrent.futures as cf

    futures = [executor.submit(fn, *args, **kwargs) for fn, args, kwargs in calls]
    ok = False
    try:
        pending = set(futures)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            done, pending = cf.wait(pending, timeout=max(0.0, min(stall, left)), return_when=cf.FIRST_COMPLETED)
            if not done:
                why = f"no task finished for {stall:.0f}s" if left > stall else f"the tasks took longer than {timeout:.0f}s"
                raise AssertionError(
                    f"{type(executor).__name__}: {why}; {len(pending)} of {len(futures)} tasks still pending — a worker "
                    "is stuck (deadlock?)"
                )
            for f in done:
                f.result()  # raise a task's exception now
        ok = True
        return [f.result() for f in futures]
    finally:
        if not ok:
            for proc in list((getattr(executor, "_processes", None) or {}).values()):
                try:
                    proc.kill()
                except Exception:
                    pass
        executor.shutdown(wait=ok, cancel_futures=not ok)


# --------------------------------------------------------------------------------------------------------------
# Lock holder process
# --------------------------------------------------------------------------------------------------------------


class LockHolder:
    """A separate OS process holding `Store.lock`s on command (see the module docstring)."""

    TERMINAL = ("acquired", "timeout", "error")

    def __init__(self, store_path, label: str = "holder"):
        self.label = label
        env = dict(os.environ)
        env["PYTHONWARNINGS"] = "ignore"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_api_helpers.py"), "lock-server", str(store_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.wait_for(None, "ready", timeout=180)
        self.pid = self.proc.pid

    def _read_stdout(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                ev = {"event": "garbage", "line": line}
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "eof"})
            self._cond.notify_all()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _send(self, obj: dict) -> None:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def acquire(self, id: str, name: str | None = None, mode: str = "w", timeout: float | None = None) -> None:
        """Starts acquiring (returns at once; use wait_for / acquired)."""
        self._send({"op": "acquire", "id": id, "name": name, "mode": mode, "timeout": timeout})

    def release(self, id: str) -> dict:
        self._send({"op": "release", "id": id})
        return self.wait_for(id, "exited")

    def find(self, id: str | None, event: str) -> dict | None:
        with self._cond:
            for ev in self.events:
                if ev.get("id") == id and ev.get("event") == event:
                    return ev
        return None

    def wait_for(self, id: str | None, event: str, timeout: float = 60) -> dict:
        """Waits for `event` of lock `id`; fails at once when `id` reached another terminal state instead."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events:
                    if ev.get("id") == id and ev.get("event") == event:
                        return ev
                    if (
                        id is not None
                        and ev.get("id") == id
                        and event in self.TERMINAL
                        and ev.get("event") in self.TERMINAL
                        and ev.get("event") != event
                    ):
                        raise AssertionError(f"{self.label}: lock {id!r} ended in {ev} while waiting for {event!r}")
                    if ev.get("event") == "eof":
                        raise AssertionError(
                            f"{self.label}: holder process exited while waiting for {event!r} of {id!r}; "
                            f"stderr:\n{''.join(self._stderr)[-4000:]}"
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.label}: no {event!r} event for lock {id!r} within {timeout}s; events: {self.events}; "
                        f"stderr:\n{''.join(self._stderr)[-4000:]}"
                    )
                self._cond.wait(min(left, 0.5))

    def state(self, id: str) -> str | None:
        """The latest event of lock `id`."""
        with self._cond:
            evs = [e["event"] for e in self.events if e.get("id") == id]
        return evs[-1] if evs else None

    def kill(self) -> None:
        """SIGKILL: no finally block, no atexit, nothing runs in the holder."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"op": "exit"})
                self.proc.wait(timeout=20)
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _lock_server(store_path: str) -> None:
    quiet()
    out_lock = threading.Lock()

    def emit(**ev):
        with out_lock:
            sys.stdout.write(json.dumps(ev) + "\n")
            sys.stdout.flush()

    import zarrtx

    store = zarrtx.open(store_path)
    releases: dict[str, threading.Event] = {}

    def hold(id: str, name, mode: str, timeout):
        t0 = time.monotonic()
        emit(id=id, event="waiting", t=t0)
        try:
            with store.lock(name, mode=mode, timeout=timeout):
                emit(id=id, event="acquired", t=time.monotonic())
                releases[id].wait()
                emit(id=id, event="released", t=time.monotonic())
            emit(id=id, event="exited", t=time.monotonic())
        except zarrtx.LockTimeout as e:
            t = time.monotonic()
            emit(id=id, event="timeout", t=t, elapsed=t - t0, message=str(e),
                 is_timeout_error=isinstance(e, TimeoutError))
        except BaseException as e:  # reported, not raised: the parent decides
            emit(id=id, event="error", type=type(e).__name__, message=str(e))

    emit(event="ready", pid=os.getpid())
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "acquire":
            releases[cmd["id"]] = threading.Event()
            threading.Thread(
                target=hold, args=(cmd["id"], cmd.get("name"), cmd.get("mode", "w"), cmd.get("timeout")), daemon=True
            ).start()
        elif op == "release":
            releases[cmd["id"]].set()
        elif op == "exit":
            break
    for ev in releases.values():
        ev.set()
    time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "lock-server":
        _lock_server(sys.argv[2])
    else:
        sys.exit("usage: python _api_helpers.py lock-server STORE")
