"""The store tests' write back-end: tests that take ``writer`` run once per TrialWriter."""

from __future__ import annotations

import pytest
from store_workers import WRITERS


@pytest.fixture(params=sorted(WRITERS))
def writer(request) -> str:
    """A name in ``store_workers.WRITERS``: "files" (plain files, a local store's default) or "zarr"
    (zarr's own path, the default for fsspec URLs), on a local folder."""
    return request.param
