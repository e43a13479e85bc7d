"""hdmf-zarr's input for parallel_image.py: a GenericDataChunkIterator over channel 0 of the bench's (1, y, x) .npy.

A module of its own (imported only by the hdmf-zarr writer and, through pickling, by hdmf-zarr's worker processes)
so that nothing else in the benchmark imports hdmf. hdmf-zarr writes in parallel only iterators that round-trip
through ``_to_dict`` / ``_from_dict``: each worker rebuilds the iterator from the file's path and reads its buffers
from the file itself.
"""
from __future__ import annotations

from hdmf.data_utils import GenericDataChunkIterator

from _inputs import NpySource


class NpyChunkIterator(GenericDataChunkIterator):
    def __init__(self, path: str, **kwargs):
        self._src = NpySource(path, channel=0)
        self._kwargs = dict(kwargs)
        super().__init__(**kwargs)

    def _get_data(self, selection):
        return self._src[selection]

    def _get_maxshape(self):
        return self._src.shape

    def _get_dtype(self):
        return self._src.dtype

    def _to_dict(self):
        return {"path": self._src.path, "kwargs": self._kwargs}

    @staticmethod
    def _from_dict(dictionary):
        return NpyChunkIterator(dictionary["path"], **dictionary["kwargs"])
