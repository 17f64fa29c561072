"""Raven selection tables: hand-written fixtures, real tables, round trips, crowsetta reads ours."""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import given

from annotations.helpers import ROUND_TRIP, assert_same_events, event_tables
from biomae.annotations import raven, read_annotations, write_annotations
from biomae.annotations.schema import EventTableError, make_events

HEADER = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"


def _write(tmp_path, text: str, name: str = "rec.Table.1.selections.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_species_column_integer_freqs_and_crlf(tmp_path):
    text = f"{HEADER}\tSpecies\t\r\n1\tSpectrogram 1\t1\t0.5\t1.25\t1000\t4000\tEATO\r\n"
    text += "2\tSpectrogram 1\t2\t2\t3\t500\t900\tWOTH\r\n"
    events = raven.read(_write(tmp_path, text))
    assert list(events["label"]) == ["EATO", "WOTH"]
    assert list(events["low_hz"]) == [1000.0, 500.0]
    assert list(events["channel"]) == [1, 2]
    assert set(events["recording"]) == {"rec"}  # table name without ".Table.1.selections.txt"
    assert set(events["source"]) == {"raven"}
    assert events.attrs["skipped"] == []


def test_read_header_only_gives_empty_table(tmp_path):
    events = raven.read(_write(tmp_path, f"{HEADER}\tAnnotation\t\n"))
    assert len(events) == 0 and "label" in events.columns


def test_view_duplicates_keep_one_row_per_selection(tmp_path):
    text = f"{HEADER}\tAnnotation\n"
    text += "1\tWaveform 1\t1\t0.5\t1.0\t0\t0\tA\n1\tSpectrogram 1\t1\t0.5\t1.0\t200\t800\tA\n"
    text += "2\tSpectrogram 1\t1\t2.0\t3.0\t100\t300\tB\n2\tWaveform 1\t1\t2.0\t3.0\t0\t0\tB\n"
    text += "2\tSpectrogram 1\t2\t2.0\t3.0\t150\t300\tB\n"  # same selection, channel 2
    events = raven.read(_write(tmp_path, text))
    assert list(events["label"]) == ["A", "B", "B"]
    assert list(events["low_hz"]) == [200.0, 100.0, 150.0]  # the Spectrogram view's box
    assert list(events["channel"]) == [1, 1, 2]


def test_begin_file_and_file_offset_span_many_files(tmp_path):
    text = f"{HEADER}\tBegin File\tFile Offset (s)\tCall Type\n"
    text += "1\tSpectrogram 1\t1\t10.0\t10.5\t100\t200\ta.wav\t10.0\tsong\n"
    text += "2\tSpectrogram 1\t1\t65.0\t66.0\t100\t200\tb.wav\t5.0\tcall\n"
    events = raven.read(_write(tmp_path, text))
    assert list(events["recording"]) == ["a.wav", "b.wav"]
    assert list(events["start_s"]) == [10.0, 5.0]
    assert list(events["end_s"]) == [10.5, 6.0]
    # no label column but "Call Type": it becomes the label
    assert list(events["label"]) == ["song", "call"]
    no_offset = text.replace("\tFile Offset (s)", "").replace("\t10.0\tsong", "\tsong")
    with pytest.raises(EventTableError, match="spans 2 files .* no 'File Offset"):
        raven.read(_write(tmp_path, no_offset.replace("\t5.0\tcall", "\tcall"), "n.txt"))


def test_label_column_option_and_unknown_column(tmp_path):
    text = f"{HEADER}\tSpecies\tNotes\n1\tSpectrogram 1\t1\t0\t1\t10\t20\tEATO\tfaint\n"
    path = _write(tmp_path, text)
    assert list(raven.read(path, label_column="Notes")["label"]) == ["faint"]
    assert list(raven.read(path)["Notes"]) == ["faint"]  # other columns are kept as extras
    with pytest.raises(EventTableError, match="Tags"):
        raven.read(path, label_column="Tags")


def test_malformed_rows_raise_with_line_or_are_skipped_when_lenient(tmp_path):
    text = f"{HEADER}\tAnnotation\n1\tSpectrogram 1\t1\t0\t1\t10\t20\tok\n"
    text += "2\tSpectrogram 1\t1\tabc\t1\t10\t20\tbad\n"
    text += "3\tSpectrogram 1\t1\t5\t4\t10\t20\tbackwards\n"
    path = _write(tmp_path, text)
    with pytest.raises(EventTableError, match=r"selections\.txt:3: Begin Time \(s\) is not a num"):
        raven.read(path)
    with pytest.warns(UserWarning, match="skipped 2"):
        events = raven.read(path, lenient=True)
    assert list(events["label"]) == ["ok"]
    assert len(events.attrs["skipped"]) == 2
    assert events.attrs["skipped"][0].startswith(f"{path}:3: Begin Time (s) is not a number")
    assert events.attrs["skipped"][1].startswith(f"{path}:4: end_s is before start_s")


def test_read_many_concatenates(tmp_path):
    one = _write(tmp_path, f"{HEADER}\tAnnotation\n1\tSpectrogram 1\t1\t0\t1\t10\t20\tx\n", "a.txt")
    two = _write(tmp_path, f"{HEADER}\tAnnotation\n1\tSpectrogram 1\t1\t3\t4\t10\t20\ty\n", "b.txt")
    events = raven.read_many([one, two])
    assert list(events["recording"]) == ["a", "b"] and list(events["label"]) == ["x", "y"]


def test_time_only_events_restore_nan_box(tmp_path):
    events = make_events([{"start_s": 1.0, "end_s": 2.0, "label": "x", "recording": "r.wav"}])
    for sample_rate in (None, 22050):
        path = tmp_path / f"t{sample_rate}.selections.txt"
        raven.write(events, path, sample_rate=sample_rate)
        back = raven.read(path)
        assert math.isnan(back["low_hz"][0]) and math.isnan(back["high_hz"][0])
    text = path.read_text()
    assert "\t0.0\t11025.0\t" in text and "Freq Box" in text  # Raven sees a full-band box


@ROUND_TRIP
@given(events=event_tables(max_rows=6))
def test_round_trip(tmp_path, events):
    path = tmp_path / "rt.selections.txt"
    write_annotations(events, path, "raven", label_column="Sound")
    back = read_annotations(path, "raven", recording="", label_column="Sound")
    expected = events.copy()
    if (expected["source"] == "").all():
        expected["source"] = "raven"  # no Source column written: the reader names the tool
    assert_same_events(back, expected)


def test_several_recordings_need_durations(tmp_path):
    events = make_events(
        [
            {"start_s": 1.0, "end_s": 2.0, "recording": "a.wav", "low_hz": 5.0, "high_hz": 9.0},
            {"start_s": 0.5, "end_s": 0.75, "recording": "b.wav", "low_hz": 5.0, "high_hz": 9.0},
        ]
    )
    path = tmp_path / "multi.selections.txt"
    with pytest.raises(ValueError, match="durations_s"):
        raven.write(events, path)
    raven.write(events, path, durations_s={"a.wav": 60.0, "b.wav": 30.0})
    assert "\t60.5\t60.75\t" in path.read_text()  # Begin Time runs over the concatenated files
    assert_same_events(raven.read(path), events.assign(source="raven"), rtol=1e-12)


def test_written_table_reads_with_crowsetta(tmp_path):
    crowsetta = pytest.importorskip("crowsetta")
    events = make_events(
        [
            {"start_s": 0.5, "end_s": 1.5, "low_hz": 1000, "high_hz": 3000, "label": "EATO"},
            {"start_s": 2.0, "end_s": 2.5, "label": "noise", "score": 0.9},  # time-only event
        ],
        recording="x.wav",
    )
    path = tmp_path / "x.selections.txt"
    raven.write(events, path, sample_rate=22050)
    assert path.read_text().splitlines()[0].split("\t") == [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
        "Begin File",
        "Annotation",
        "Score",
        "Freq Box",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bboxes = crowsetta.formats.bbox.Raven.from_file(path, annot_col="Annotation").to_bbox()
    assert [b.label for b in bboxes] == ["EATO", "noise"]
    assert [(b.onset, b.offset, b.low_freq, b.high_freq) for b in bboxes] == [
        (0.5, 1.5, 1000.0, 3000.0),
        (2.0, 2.5, 0.0, 11025.0),
    ]


def test_real_tables(shared_data):
    osd = shared_data / "formats" / "opensoundscape" / "tests" / "raven_annots"
    assert len(raven.read(osd / "EmptyExample.Table.1.selections.txt")) == 0
    annotation = raven.read(osd / "raven_with_Annotation_col.txt")
    assert list(annotation["label"]) == ["CSWA"]
    msd = raven.read(osd / "MSD-0003_20180427_2minstart00.Table.1.selections.txt")
    assert len(msd) == 10 and {"distance", "type"} <= set(msd.columns)
    example = shared_data / "formats/crowsetta/src/crowsetta/examples"
    eato = raven.read(example / "Recording_1_Segment_02.Table.1.selections.txt")
    assert len(eato) == 6 and set(eato["label"]) == {"EATO"}
    assert eato["start_s"][0] == pytest.approx(154.387792767)
    assert eato["high_hz"][0] == pytest.approx(4049.0)
    chronister = sorted(
        (shared_data / "formats/crowsetta/tests/data_for_tests/raven").rglob("*.selections.txt")
    )
    events = raven.read_many(chronister)
    assert len(chronister) >= 30 and len(events) > 5000
    assert events["recording"].nunique() == len(chronister) - 1  # Segment_01 is header-only
    assert (events["high_hz"] > events["low_hz"]).all() and (events["label"] != "").all()


def test_begin_path_names_the_recording_when_asked(tmp_path):
    text = f"{HEADER}\tBegin Path\tBegin File\tSpecies\n"
    text += "1\tSpectrogram 1\t1\t1\t2\t10\t20\tC:\\rec\\a.wav\ta.wav\tEATO\n"
    path = _write(tmp_path, text)
    assert list(raven.read(path)["recording"]) == ["a.wav"]
    by_path = raven.read(path, recording_from="path")
    assert list(by_path["recording"]) == ["C:\\rec\\a.wav"]
    assert list(by_path["Begin File"]) == ["a.wav"]  # the column not used is kept as an extra


def test_birdnet_selection_table(tmp_path):
    """BirdNET's Raven output: Common Name labels, Confidence scores, its own file suffix."""
    path = tmp_path / "XC1.BirdNET.selection.table.txt"
    path.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
        "\tCommon Name\tSpecies Code\tConfidence\n"
        "1\tSpectrogram 1\t1\t0\t3.0\t150\t15000\tAmerican Robin\tamerob\t0.8123\n"
    )
    events = raven.read(path)
    assert events.loc[0, "label"] == "American Robin"
    assert events.loc[0, "score"] == pytest.approx(0.8123)
    assert events.loc[0, "recording"] == "XC1"
