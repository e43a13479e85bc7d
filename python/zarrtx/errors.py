"""The exceptions zarrtx raises. Every one derives from :class:`ZarrtxError`; messages name the element (or lock,
or path) concerned and say how to fix the problem. The compiled engine raises these same classes.

They also derive from the closest built-in exception (``KeyError`` for a missing element, ``ValueError`` for bad
input, ``OSError`` for storage failures, ``TimeoutError`` for lock timeouts), so generic handlers keep working.
All of them pickle (they travel back from ProcessPoolExecutor and Dask workers).
"""

from __future__ import annotations


class ZarrtxError(Exception):
    """Base class of every zarrtx error."""

    def __str__(self) -> str:  # KeyError-derived subclasses would otherwise print repr(message)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ElementExists(ZarrtxError):
    """An element of that name (compared case-insensitively, across all element types) is already in the store.
    Pick another name, or pass ``overwrite=True`` to replace it."""


class ElementNotFound(ZarrtxError, KeyError):
    """No element of that name exists (at the requested version)."""


class InvalidElement(ZarrtxError, ValueError):
    """The element (or its name) breaks a rule of the SpatialData / AnnData format; nothing was written."""


class Conflict(ZarrtxError):
    """A concurrent change made this operation impossible (for example the element was deleted or its schema
    changed meanwhile); the store is unchanged. Re-read and retry if it still makes sense."""


class StorageError(ZarrtxError, OSError):
    """The storage failed or refused (full, read-only, unsafe medium, not a store, corrupt metadata)."""


class VersionNotAvailable(ZarrtxError):
    """The requested version is not in the log, or its data was reclaimed by ``gc``."""


class LockTimeout(ZarrtxError, TimeoutError):
    """A :meth:`zarrtx.Store.lock` was not acquired within its timeout."""


__all__ = [
    "ZarrtxError",
    "ElementExists",
    "ElementNotFound",
    "InvalidElement",
    "Conflict",
    "StorageError",
    "VersionNotAvailable",
    "LockTimeout",
]
