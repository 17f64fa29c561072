"""Clip-label tables (ESC-50 layout) and one-label-per-folder layouts: whole-clip events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile

from biomae.annotations import cliplabels, read_annotations
from biomae.annotations.schema import EventTableError

ESC50 = """filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-100038-A-14.wav,1,14,chirping_birds,False,100038,A
"""


def _wav(path, seconds: float, sample_rate: int = 8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * sample_rate), np.float32), sample_rate)


def test_esc50_table_with_constant_duration_or_headers(tmp_path):
    path = tmp_path / "esc50.csv"
    path.write_text(ESC50, "utf-8")
    events = read_annotations(path, "cliplabels", duration_s=5.0)
    assert list(events["recording"]) == ["1-100032-A-0.wav", "1-100038-A-14.wav"]
    assert list(events["label"]) == ["dog", "chirping_birds"]
    assert list(events["start_s"]) == [0.0, 0.0] and list(events["end_s"]) == [5.0, 5.0]
    assert list(events["fold"]) == ["1", "1"] and list(events["esc10"]) == ["True", "False"]
    _wav(tmp_path / "audio" / "1-100032-A-0.wav", 2.5)
    _wav(tmp_path / "audio" / "1-100038-A-14.wav", 1.25)
    from_headers = cliplabels.read(path, audio_dir=tmp_path / "audio")
    assert list(from_headers["end_s"]) == [2.5, 1.25]
    given = cliplabels.read(path, durations={"1-100032-A-0.wav": 4.0}, duration_s=5.0)
    assert list(given["end_s"]) == [4.0, 5.0]


def test_unknown_duration_is_a_named_bad_row(tmp_path):
    path = tmp_path / "esc50.csv"
    path.write_text(ESC50, "utf-8")
    with pytest.raises(EventTableError, match=r"esc50\.csv:2: no duration for clip '1-100032"):
        cliplabels.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        events = cliplabels.read(path, durations={"1-100038-A-14.wav": 5.0}, lenient=True)
    assert list(events["label"]) == ["chirping_birds"]
    with pytest.raises(EventTableError, match="no label column"):
        cliplabels.read(path, label_column="species")


def test_read_folder(tmp_path):
    _wav(tmp_path / "Orcinus_orca" / "a.wav", 1.5)
    _wav(tmp_path / "Orcinus_orca" / "sub" / "b.wav", 0.5)
    _wav(tmp_path / "Tursiops" / "c.WAV", 2.0)
    (tmp_path / "README.txt").write_text("not audio")
    (tmp_path / "Tursiops" / "notes.txt").write_text("not audio")
    (tmp_path / "Tursiops" / "broken.wav").write_bytes(b"RIFF0000WAVE")
    with pytest.raises(EventTableError, match=r"Tursiops/broken\.wav"):
        cliplabels.read_folder(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1"):
        events = cliplabels.read_folder(tmp_path, lenient=True)
    assert list(events["recording"]) == [
        "Orcinus_orca/a.wav",
        "Orcinus_orca/sub/b.wav",
        "Tursiops/c.WAV",
    ]
    assert list(events["label"]) == ["Orcinus_orca", "Orcinus_orca", "Tursiops"]
    assert list(events["end_s"]) == [1.5, 0.5, 2.0]
    assert sorted(events.attrs["ignored"]) == ["README.txt", "Tursiops/notes.txt"]


def test_real_clip_index_and_folder(shared_data):
    index = pd.read_csv(shared_data / "index/clips.csv")
    events = cliplabels.read(shared_data / "index/clips.csv")  # file, label, duration_s columns
    assert len(events) == len(index) and list(events["label"]) == list(index["label"])
    assert events["end_s"].to_numpy() == pytest.approx(index["duration_s"].to_numpy())
    fish = shared_data / "audio/perch/chirp/projects/agile_bioacoustics"
    folder = cliplabels.read_folder(fish)
    assert len(folder) == 9 and set(folder["label"]) == {"fish_audio_queries"}
    expected = index[index["source"] == "perch_fish_queries"].sort_values("file")
    assert folder["end_s"].to_numpy() == pytest.approx(expected["duration_s"].to_numpy(), abs=1e-3)
