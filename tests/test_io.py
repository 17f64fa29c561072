"""Atomic outputs: all or nothing, usual permissions."""

from __future__ import annotations

import os

import pytest

from biomae.atomic_io import atomic_open, atomic_write_text


def test_atomic_write_replaces_whole_file_with_usual_permissions(tmp_path):
    path = tmp_path / "sub" / "table.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["table.txt"]


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.txt"
    atomic_write_text(path, "old")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as handle:
        handle.write("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.txt"]
