"""Store locations: one code path for local folders and any fsspec URL (s3://, gs://, memory://, ...)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from explorer.errors import StoreError
from explorer.layout import SIGNALS_NAME

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")

#: the signals store's folder name inside a study folder


def is_remote(url: str | Path) -> bool:
    """True for an fsspec URL other than ``file://``."""
    m = _SCHEME.match(str(url))
    return bool(m) and m.group(1).lower() != "file"


def local_path(url: str | Path) -> Path:
    """A local path from a path or ``file://`` URL."""
    s = str(url)
    if s.lower().startswith("file://"):
        s = s[len("file://"):]
    return Path(s).expanduser()


def join(url: str, *parts: str) -> str:
    """Join path components onto a path or URL with '/'."""
    out = str(url).rstrip("/")
    for p in parts:
        out += "/" + str(p).strip("/")
    return out


def open_store(url: str | Path, storage_options: dict[str, Any] | None = None, read_only: bool = False):
    """The zarr store at ``url``: a ``LocalStore`` for paths and ``file://``, else an ``FsspecStore``."""
    import zarr.storage

    if is_remote(url):
        try:
            return zarr.storage.FsspecStore.from_url(str(url), storage_options=storage_options or {},
                                                     read_only=read_only)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open signals store {url!r}: {exc}. Install the fsspec backend for "
                             "this scheme (e.g. s3fs, gcsfs) and check storage_options.") from exc
    path = local_path(url)
    if read_only and not path.exists():
        raise StoreError(f"signals store {str(path)!r} does not exist: run the study first, or pass the "
                         "study folder or the signals.zarr location")
    return zarr.storage.LocalStore(path, read_only=read_only)


def check_id(kind: str, value: str) -> str:
    """Subject ids become path components: letters, digits, '_', '.', '-' only."""
    if not isinstance(value, str) or not _SAFE_ID.match(value) or value in (".", ".."):
        raise StoreError(f"{kind} {value!r} cannot be stored: use letters, digits, '_', '.' and '-' only")
    return value
