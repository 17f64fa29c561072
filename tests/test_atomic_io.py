"""A group of files written all or none: fsynced together, renamed, nothing left on failure."""

from __future__ import annotations

import os

import pytest

from biomae import atomic_io
from biomae.annotations import write_annotations
from biomae.annotations.schema import make_events
from biomae.atomic_io import atomic_paths


def test_a_group_is_renamed_whole_and_its_writers_write_the_temporaries_directly(
    tmp_path, monkeypatch
):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    (tmp_path / "a.csv").write_text("old")
    events = make_events([{"start_s": 0.5, "end_s": 1.0}])
    paths = [tmp_path / "a.csv", tmp_path / "sub" / "a.parquet"]
    with atomic_paths(paths) as temporaries:
        write_annotations(events, temporaries[0], "csv")  # atomic_open inside: no nested file
        write_annotations(events, temporaries[1], "parquet")  # atomic_path inside
        assert sorted(p.name for p in tmp_path.rglob("*.part")) == sorted(
            p.name for p in temporaries
        )
        assert (tmp_path / "a.csv").read_text() == "old" and not synced
    assert not list(tmp_path.rglob("*.part"))
    assert (tmp_path / "a.csv").read_text().startswith("recording,start_s")
    assert (tmp_path / "sub" / "a.parquet").exists()
    assert len(synced) == 4  # each file once, then each folder once


def _disk_full(path):
    raise OSError(28, "No space left on device", str(path))


@pytest.mark.parametrize("when", ["writing", "syncing"])
def test_a_failed_group_leaves_the_old_files_and_no_temporaries(tmp_path, monkeypatch, when):
    (tmp_path / "a.txt").write_text("old a")
    if when == "syncing":
        monkeypatch.setattr(atomic_io, "_fsync", _disk_full)
    with pytest.raises(OSError), atomic_paths([tmp_path / "a.txt", tmp_path / "b.txt"]) as tmp:
        tmp[0].write_text("new a")
        if when == "writing":
            raise OSError(28, "No space left on device")
        tmp[1].write_text("new b")
    assert (tmp_path / "a.txt").read_text() == "old a" and not (tmp_path / "b.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
