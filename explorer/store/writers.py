"""How a ``write_trials`` group reaches the store: the :class:`TrialWriter` strategy.

Two implementations, one contract (tests/store/test_writers.py runs it over both):

- :class:`FileWriter`: a local store's groups as plain files (:mod:`explorer.store.files`): zarr's
  bytes without its event loop, the commit one atomic rename (an actor's critical path: 3.4-4.0 ms
  for 6 trials of 700 TRs x 80 regions, against 12-14 ms through zarr);
- :class:`ZarrWriter`: through zarr's async API, for any store, the one path for fsspec URLs
  (the cluster's object stores), the commit one put of the group's metadata.

:func:`writer_for` picks one from the store's URL; :class:`~explorer.store.SignalStore` takes
another as its ``writer`` argument (a factory: zarr store -> writer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from explorer.errors import StoreError
from explorer.store import files, nodes
from explorer.store.urls import is_remote


@runtime_checkable
class TrialWriter(Protocol):
    """Writes the groups of ``write_trials`` calls into one store, in two steps.

    :meth:`stage` writes an uncommitted group at ``path``: its metadata with ``marker`` first (so
    an attempt killed later is found and collected), then each array of ``arrays`` as ONE uncompressed
    chunk (little-endian, NaN fill), creating parent groups where missing. :meth:`commit` then
    replaces the group's attributes by ``attrs`` in one atomic put: readers see the group's old
    metadata or its new, never a part. A group is never written by two writers (each has a fresh
    uuid), and a committed one is never staged again.
    """

    def stage(self, path: str, marker: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
        """Write the uncommitted group; returns what :meth:`commit` takes."""

    def commit(self, staged: Any, attrs: Mapping[str, Any]) -> None:
        """Make the staged group visible: its attributes become ``attrs``, in one atomic put."""


#: what :class:`~explorer.store.SignalStore` takes as ``writer``: zarr store -> its writer
WriterFactory = Callable[[Any], TrialWriter]


class FileWriter:
    """A local store's groups written as plain files (zarr's own bytes); ``zstore``: a zarr ``LocalStore``."""

    def __init__(self, zstore) -> None:
        root = getattr(zstore, "root", None)
        if not isinstance(root, Path):
            raise StoreError(f"FileWriter writes local folders only, not {zstore!r}: use ZarrWriter "
                             "(SignalStore(url, writer=ZarrWriter)) or let the store choose (writer=None)")
        self.root = root

    def stage(self, path: str, marker: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
        return files.write_group(self.root, path, marker, arrays)

    def commit(self, staged: Path, attrs: Mapping[str, Any]) -> None:
        files.replace_group_metadata(staged, attrs)


class ZarrWriter:
    """Groups written through zarr's async API (any zarr store: local, or an fsspec URL's).

    Each step is one pass through zarr's event loop (a hand-over to its thread, slow on cores the
    simulations keep busy); the arrays of a group are written concurrently. Uncompressed, one chunk
    per array: zstd and a shard of per-trial chunks took ~45% longer for ~12% fewer bytes of float
    BOLD (6 trials x 700 TRs x 80 regions: 14.6 vs 8.0 ms); packing compresses and chunks per trial.
    """

    def __init__(self, zstore) -> None:
        self.zstore = zstore

    def stage(self, path: str, marker: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):
        return nodes.sync(self._stage(path, dict(marker), arrays))

    async def _stage(self, path: str, marker: dict[str, Any], arrays: Mapping[str, np.ndarray]):
        import asyncio

        import zarr.api.asynchronous as az

        group = await az.create_group(store=self.zstore, path=path, attributes=marker)
        await asyncio.gather(*(az.create_array(self.zstore, name=f"{path}/{var}", data=data, chunks=data.shape,
                                               compressors=None, fill_value=np.nan, overwrite=True)
                               for var, data in arrays.items()))
        return group

    def commit(self, staged, attrs: Mapping[str, Any]) -> None:
        nodes.sync(staged.update_attributes(dict(attrs)))


def writer_for(url: str) -> WriterFactory:
    """The writer of the store at ``url``: :class:`ZarrWriter` for an fsspec URL, else :class:`FileWriter`."""
    return ZarrWriter if is_remote(url) else FileWriter
