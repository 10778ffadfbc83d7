"""The few zarr node operations every part of the store uses: run a coroutine on zarr's loop, open,
test, delete, write and read the nodes of a zarr store (``zstore``: a ``zarr.abc.store.Store``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def sync(coro):
    """Run one coroutine of zarr's async API on zarr's own event loop; its result."""
    from zarr.core.sync import sync as zarr_sync

    return zarr_sync(coro)


def codecs(clevel: int = 3):
    """The compressor of stored arrays: Blosc zstd, byte shuffle."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=clevel, shuffle="shuffle")


def open_group(zstore, path: str):
    """The group at ``path`` (read-only), or None if there is none."""
    import zarr

    try:
        return zarr.open_group(zstore, path=path, mode="r")
    except (FileNotFoundError, KeyError):
        return None


def metadata_key(path: str) -> str:
    """The key of the node's metadata at ``path`` ("" is the root)."""
    return f"{path}/zarr.json" if path else "zarr.json"


def exists(zstore, path: str) -> bool:
    """Whether a node (group or array) is at ``path`` ("" is the root)."""
    return bool(sync(zstore.exists(metadata_key(path))))


def delete(zstore, path: str) -> None:
    """Remove the node at ``path`` and everything below it."""
    sync(zstore.delete_dir(path))
    # LocalStore/FsspecStore delete_dir removes keys below the prefix; drop the node itself
    if sync(zstore.exists(metadata_key(path))):
        sync(zstore.delete(metadata_key(path)))


def write_array(zstore, path: str, data: np.ndarray, **kw) -> None:
    """Write ``data`` as a compressed array at ``path`` (one chunk unless ``chunks`` says otherwise; NaN fill)."""
    import zarr

    zarr.create_array(zstore, name=path, data=data, chunks=kw.pop("chunks", data.shape),
                      compressors=codecs(), fill_value=np.nan, overwrite=True, **kw)


def read_array(zstore, path: str, index: Any = ...) -> np.ndarray:
    """``array[index]`` of the array at ``path``, as numpy."""
    import zarr

    return np.asarray(zarr.open_array(zstore, path=path, mode="r")[index])
