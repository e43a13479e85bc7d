"""What :class:`zarrtx.Store` and :class:`zarrtx.Hierarchy` share: a path and open options, an engine handle
opened lazily once per process (re-opened after a fork), and pickling to the path and options only."""

from __future__ import annotations

import os
import threading
from typing import Any


class EngineHandle:
    """A picklable, thread-safe, fork-safe holder of one ``zarrtx._core`` handle (``_CORE_CLASS`` names it)."""

    _CORE_CLASS = ""

    def _setup(self, path: str | os.PathLike[str], options: dict[str, Any]) -> None:
        self._path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self._options = {k: bool(v) for k, v in options.items()}
        self._init_runtime()
        self._handle()  # open now: a bad path or an unsafe medium is reported here, not at the first write

    def _init_runtime(self) -> None:
        self._core: Any = None
        self._pid = -1
        self._mutex = threading.Lock()

    # -- pickling: location and options only ------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self._path, "options": dict(self._options)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._path = state["path"]
        self._options = dict(state["options"])
        self._init_runtime()  # the engine is re-opened lazily, at the first call in this process

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickle, (type(self), self._path, dict(self._options)))

    def _flags(self) -> str:
        flags = [k for k in ("read_only", "single_writer") if self._options.get(k)]
        if not self._options.get("durable", True):
            flags.append("durable=False")
        return (", " + ", ".join(flags)) if flags else ""

    # -- the engine handle ------------------------------------------------------------------------------------

    def _handle(self) -> Any:
        pid = os.getpid()
        h = self._core
        if h is not None and self._pid == pid:
            return h
        if self._pid != pid and self._pid != -1:
            self._mutex = threading.Lock()  # a lock inherited through fork may be held by a thread that is gone
        with self._mutex:
            if self._core is None or self._pid != pid:
                from . import _core

                self._core = getattr(_core, self._CORE_CLASS)(self._path, **self._options)
                self._pid = pid
            return self._core

    @property
    def path(self) -> str:
        """The absolute path of the root directory."""
        return self._path


def _unpickle(cls: type, path: str, options: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__setstate__({"path": path, "options": options})
    return obj
