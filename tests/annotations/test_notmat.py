"""evsonganaly .not.mat: ms onsets/offsets and a label string; round trip; real files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io

from annotations.helpers import assert_same_events
from biomae.annotations import notmat, read_annotations, write_annotations
from biomae.annotations.schema import EventTableError, make_events

EXAMPLE = "formats/crowsetta/src/crowsetta/examples/gy6or6_baseline_230312_0808.138.cbin.not.mat"


def test_round_trip(tmp_path):
    events = make_events(
        {"start_s": [0.1, 0.35, 1.2345678], "end_s": [0.2, 0.5, 1.3], "label": ["a", "b", "-"]},
        recording="song.cbin",
        source="notmat",
    )
    path = tmp_path / "song.cbin.not.mat"
    write_annotations(events, path, "notmat", sample_rate=32000)
    back = read_annotations(path, "notmat")
    assert_same_events(back, events, rtol=1e-12)
    assert list(back["sample_rate"]) == [32000] * 3


def test_single_syllable_and_mismatched_labels(tmp_path):
    path = tmp_path / "one.not.mat"
    scipy.io.savemat(path, {"onsets": 100.0, "offsets": 150.0, "labels": "a", "Fs": 32000.0})
    events = notmat.read(path)
    assert list(events["start_s"]) == [0.1] and list(events["recording"]) == ["one"]
    scipy.io.savemat(path, {"onsets": [1.0, 2.0], "offsets": [1.5, 2.5], "labels": "a"})
    with pytest.raises(EventTableError, match="2 onsets, 2 offsets and 1 labels"):
        notmat.read(path)
    labels = ["ab", "a", "", "ab"]
    table = make_events([{"start_s": i, "end_s": i + 1, "label": x} for i, x in enumerate(labels)])
    with pytest.warns(UserWarning, match="2 label.* not one character.*'ab' -> 'b', '' -> 'c'"):
        notmat.write(table, tmp_path / "x.not.mat")
    assert notmat.read(tmp_path / "x.not.mat")["label"].str.cat() == "bacb"


def test_real_files(shared_data):
    events = notmat.read(shared_data / EXAMPLE)
    assert len(events) == 78 and events["label"].str.cat().startswith("iiiiabcdeefgh")
    assert events["start_s"][0] == pytest.approx(1.27778125)
    song = "bl26lb16_190412_0721.20144.cbin"
    path = next((shared_data / "audio/hvc").rglob(f"{song}.not.mat"))
    events = notmat.read(path)
    index = pd.read_csv(shared_data / "index/events.csv")
    index = index[index["file"].str.endswith(f"{song}.flac")]
    assert len(events) == len(index) > 0
    assert np.allclose(events["start_s"], index["onset_s"], atol=1e-5)
