"""BirdVox-full-night point annotations become fixed-width intervals (hand-written fixture)."""

from __future__ import annotations

import pytest

from biomae.annotations import birdvox, read_annotations
from biomae.annotations.schema import EventTableError

# the layout of BirdVox-full-night_csv-annotations_unitNN.csv (values made up)
CSV = "Center Freq (Hz),Time (s)\n6512.5,0.05\n4100.0,1203.25\n8000,2050.5\n"


def test_points_become_centred_intervals(tmp_path):
    path = tmp_path / "BirdVox-full-night_csv-annotations_unit03.csv"
    path.write_text(CSV, "utf-8")
    events = read_annotations(path, "birdvox")
    assert set(events["recording"]) == {"unit03"} and set(events["source"]) == {"birdvox"}
    assert list(events["time_s"]) == [0.05, 1203.25, 2050.5]
    assert events["start_s"].tolist() == pytest.approx([0.0, 1203.175, 2050.425])  # first: at 0
    assert events["end_s"].tolist() == pytest.approx([0.125, 1203.325, 2050.575])
    assert events["low_hz"].isna().all() and list(events["center_hz"]) == [6512.5, 4100.0, 8000.0]
    boxed = birdvox.read(path, width_s=0.5, band_hz=1000, label="flight call")
    assert boxed["end_s"][1] - boxed["start_s"][1] == pytest.approx(0.5)
    assert boxed.loc[1, ["low_hz", "high_hz"]].tolist() == [3600.0, 4600.0]
    assert set(boxed["label"]) == {"flight call"}


def test_bad_rows_and_missing_time(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Center Freq (Hz),Time (s)\n100,abc\n200,3\n", "utf-8")
    with pytest.raises(EventTableError, match=r"x\.csv:2: Time \(s\) is not a number"):
        birdvox.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert list(birdvox.read(path, lenient=True)["time_s"]) == [3.0]
    path.write_text("Center Freq (Hz),Begin\n1,2\n", "utf-8")
    with pytest.raises(EventTableError, match="no 'Time"):
        birdvox.read(path)
    with pytest.raises(ValueError, match="width_s must be positive"):
        birdvox.read(path, width_s=0)
