"""Shared fixtures: the bundled example and ``../shared/data`` (real recordings; tests skip without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "biomae" / "data" / "example.flac"
SHARED_DATA = Path(os.environ.get("BIOMAE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def example_path() -> Path:
    """The bundled 10-s example recording (MIT, OpenSoundscape)."""
    return EXAMPLE


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped with a clear reason where it is absent."""
    if not (SHARED_DATA / "index" / "files.csv").exists():
        pytest.skip(f"real-data test: {SHARED_DATA} not found (set BIOMAE_SHARED_DATA)")
    return SHARED_DATA
