"""Koumura Annotation.xml: sample positions relative to bouts become seconds."""

from __future__ import annotations

import pandas as pd
import pytest

from biomae.annotations import koumura, read_annotations
from biomae.annotations.schema import EventTableError

XML = """<?xml version="1.0" encoding="UTF-8"?>
<Sequences><NumSequence>2</NumSequence>
<Sequence><WaveFileName>0.wav</WaveFileName><Position>32000</Position><Length>8000</Length>
<NumNote>2</NumNote>
<Note><Position>1600</Position><Length>3200</Length><Label>a</Label></Note>
<Note><Position>6400</Position><Length>800</Length><Label>b</Label></Note></Sequence>
<Sequence><WaveFileName>1.wav</WaveFileName><Position>0</Position><Length>9</Length>
<NumNote>1</NumNote><Note><Position>x</Position><Length>3</Length><Label>c</Label></Note>
</Sequence></Sequences>
"""


def test_positions_are_relative_to_the_sequence(tmp_path):
    path = tmp_path / "Annotation.xml"
    path.write_text(XML.replace("<Position>x</Position>", "<Position>16</Position>"), "utf-8")
    events = read_annotations(path, "koumura")
    assert list(events["recording"]) == ["0.wav", "0.wav", "1.wav"]
    assert list(events["start_s"]) == [1.05, 1.2, 0.0005]
    assert list(events["end_s"]) == [1.15, 1.225, 0.0005 + 3 / 32000]
    assert list(events["label"]) == ["a", "b", "c"] and list(events["sequence"]) == [0, 0, 1]
    at_16k = koumura.read(path, sample_rate=16000)
    assert at_16k["start_s"][0] == 2.1


def test_bad_note_names_sequence_and_note(tmp_path):
    path = tmp_path / "Annotation.xml"
    path.write_text(XML, "utf-8")
    with pytest.raises(EventTableError, match="sequence 2 note 1: <Position> is not a number"):
        koumura.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(koumura.read(path, lenient=True)) == 2
    path.write_text("<Sequences><Sequence>", "utf-8")
    with pytest.raises(EventTableError, match="not well-formed XML"):
        koumura.read(path)


def test_real_bird0_matches_the_index(shared_data):
    path = shared_data / "audio/crowsetta/tests/data_for_tests/birdsongrec/Bird0/Annotation.xml"
    events = koumura.read(path)
    index = pd.read_csv(shared_data / "index/events.csv")
    index = index[index["source"] == "koumura_bird0"]
    assert len(events) == len(index) == 7652
    assert events["start_s"].to_numpy() == pytest.approx(index["onset_s"].to_numpy(), abs=1e-6)
    assert events["end_s"].to_numpy() == pytest.approx(index["offset_s"].to_numpy(), abs=1e-6)
    assert list(events["label"]) == [str(x) for x in index["label"]]
    example = shared_data / "formats/crowsetta/src/crowsetta/examples/Annotation.xml"
    assert len(koumura.read(example)) == 7652
