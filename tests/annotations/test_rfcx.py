"""RFCx train_tp / train_fp CSVs (hand-written fixture in the Kaggle layout)."""

from __future__ import annotations

import pytest

from biomae.annotations import read_annotations, rfcx
from biomae.annotations.schema import EventTableError

CSV = """recording_id,species_id,songtype_id,t_min,f_min,t_max,f_max
003bec244,14,1,44.544,2531.25,45.1307,5531.25
006ab765f,23,4,39.9615,7235.16,46.0452,11283.4
"""


def test_true_and_false_positives(tmp_path):
    tp, fp = tmp_path / "train_tp.csv", tmp_path / "train_fp.csv"
    tp.write_text(CSV, "utf-8")
    fp.write_text(CSV, "utf-8")
    events = read_annotations(tp, "rfcx")
    assert list(events["recording"]) == ["003bec244", "006ab765f"]
    assert list(events["label"]) == ["14", "23"] and list(events["call_type"]) == ["1", "4"]
    assert events.loc[0, ["start_s", "end_s", "low_hz", "high_hz"]].tolist() == [
        44.544,
        45.1307,
        2531.25,
        5531.25,
    ]
    assert not events["negative"].any() and set(events["source"]) == {"rfcx"}
    assert rfcx.read(fp)["negative"].all()
    assert not rfcx.read(fp, negative=False)["negative"].any()


def test_bad_rows_and_nyquist(tmp_path):
    path = tmp_path / "train_tp.csv"
    path.write_text(CSV + "0aa,1,1,3,100,x,200\n", "utf-8")
    with pytest.raises(EventTableError, match=r"train_tp\.csv:4: t_max is not a number"):
        rfcx.read(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(rfcx.read(path, lenient=True)) == 2
    path.write_text(CSV, "utf-8")
    with pytest.raises(EventTableError, match=r"train_tp\.csv:3: high_hz is above Nyquist"):
        rfcx.read(path, sample_rate=16000)
    path.write_text("recording_id,t_min\n", "utf-8")
    with pytest.raises(EventTableError, match="missing column"):
        rfcx.read(path)
