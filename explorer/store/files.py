"""A write_trials group of a local signals store written as plain files: the same zarr v3 nodes that
zarr writes, without its event loop.

An actor writes one such group per call, on its critical path. Through zarr, a write_trials call of
6 trials of 700 TRs x 80 regions (group metadata, two arrays' metadata and chunks, the commit) took
12-14 ms, and 2-3x that on cores the simulations keep busy, most of it hand-overs to zarr's event
loop and file threads; written here, 3.4-4.0 ms (the files alone ~1-2 ms). The bytes are zarr's: the
array metadata is made by zarr itself (once per shape, in memory), an uncompressed chunk is the
array's little-endian C-order bytes (zarr's ``bytes`` codec), and the group metadata is the JSON
zarr writes. Used by :class:`explorer.store.writers.FileWriter`; remote stores keep zarr's path
(:class:`~explorer.store.writers.ZarrWriter`).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np


@lru_cache(maxsize=64)
def array_metadata(shape: tuple[int, ...], dtype: str) -> bytes:
    """zarr.json of an uncompressed array of ``shape`` in one chunk, NaN fill, as zarr writes it."""
    import zarr
    from zarr.storage import MemoryStore

    nodes: dict[str, Any] = {}
    zarr.create_array(MemoryStore(store_dict=nodes), name="a", shape=shape, dtype=dtype, chunks=shape,
                      compressors=None, fill_value=np.nan)
    return nodes["a/zarr.json"].to_bytes()


def group_metadata(attributes: Mapping[str, Any]) -> bytes:
    """zarr.json of a group with ``attributes`` (JSON; NaN and Infinity as zarr writes them)."""
    return json.dumps({"attributes": dict(attributes), "zarr_format": 3, "node_type": "group"},
                      indent=2).encode()


def chunk_key(ndim: int) -> str:
    """The key of the single chunk of an ``ndim``-D array (default encoding, "/" separator)."""
    return "/".join(["c"] + ["0"] * ndim)


def write_group(root: Path, path: str, marker: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """A new group at ``root / path``: the metadata of its parent groups where missing (empty, as zarr
    makes them), its own with ``marker`` first, then each array (one uncompressed chunk,
    little-endian). Returns its folder."""
    directory = root / path
    parent = root
    for part in path.split("/")[:-1]:
        parent = parent / part
        parent.mkdir(exist_ok=True)
        try:
            with open(parent / "zarr.json", "xb") as f:   # never over another writer's
                f.write(group_metadata({}))
        except FileExistsError:
            pass
    directory.mkdir()
    (directory / "zarr.json").write_bytes(group_metadata(marker))
    for name, data in arrays.items():
        data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
        chunk = directory / name / chunk_key(data.ndim)
        chunk.parent.mkdir(parents=True)
        chunk.write_bytes(data.tobytes())
        (directory / name / "zarr.json").write_bytes(array_metadata(tuple(data.shape), data.dtype.name))
    return directory


def replace_group_metadata(directory: Path, attributes: Mapping[str, Any]) -> None:
    """Rewrite the group's metadata with ``attributes`` in one atomic rename (readers see the old or
    the new, never a part)."""
    tmp = directory / f".zarr.json.{os.getpid()}.tmp"
    tmp.write_bytes(group_metadata(attributes))
    os.replace(tmp, directory / "zarr.json")
