"""The format registry: every format module loads and keeps the read / write / SUFFIX contract,
and declares what `biomae annotate` needs to write it (OUTPUT_SUFFIX, WRITE_OPTIONS)."""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import pytest

from biomae.annotations import (
    FORMATS,
    format_module,
    output_suffixes,
    read_annotations,
    write_annotations,
)
from biomae.annotations.schema import EventTableError, make_events
from biomae.audio import AudioInfo

WRITABLE = {"raven", "audacity", "csv", "parquet", "textgrid", "notmat", "whisperseg"}
WRITABLE |= {"aoef", "dcase", "timit"}
# options each writer needs; the table below satisfies every writer's constraints
WRITE_OPTIONS = {"aoef": {"sample_rate": 16000}}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_module_contract(name):
    module = format_module(name)
    assert callable(module.read) and (module.__doc__ or "").strip()
    assert hasattr(module, "write") == (name in WRITABLE)
    if name in WRITABLE:
        assert isinstance(module.SUFFIX, str) and module.SUFFIX.startswith(".")
        # each recording fact a writer declares is an audio-header field and a write() keyword
        header_fields = {f.name for f in dataclasses.fields(AudioInfo)}
        keywords = inspect.signature(module.write).parameters
        for option in getattr(module, "WRITE_OPTIONS", ()):
            assert option in header_fields and option in keywords, (name, option)


def test_annotate_output_names_come_from_the_format_modules():
    """Stable names of `biomae annotate`'s per-recording tables (declared by each module)."""
    assert output_suffixes() == {
        "raven": ".selections.txt",
        "audacity": ".audacity.txt",
        "csv": ".events.csv",
        "parquet": ".events.parquet",
        "aoef": ".aoef.json",
    }


@pytest.mark.parametrize("name", sorted(WRITABLE))
def test_every_writer_reads_back_times_and_labels(tmp_path, name):
    events = make_events(
        {"start_s": [0.5, 1.25, 2.0], "end_s": [1.0, 1.875, 3.0], "label": ["a", "b", "c"]},
        recording="rec.wav",
    )
    path = tmp_path / f"rec{format_module(name).SUFFIX}"
    write_annotations(events, path, name, **WRITE_OPTIONS.get(name, {}))
    back = read_annotations(path, name)
    assert list(back["label"]) == ["a", "b", "c"]
    assert back["start_s"].tolist() == pytest.approx([0.5, 1.25, 2.0], abs=1e-4)
    assert back["end_s"].tolist() == pytest.approx([1.0, 1.875, 3.0], abs=1e-4)
    assert back.attrs["skipped"] == []


@pytest.mark.parametrize("name", sorted(WRITABLE))
def test_every_writer_refuses_an_invalid_table_and_leaves_no_file(tmp_path, name):
    bad = make_events([{"start_s": 2.0, "end_s": 1.0, "label": "a"}])
    path = tmp_path / f"bad{format_module(name).SUFFIX}"
    with pytest.raises(EventTableError, match="end_s is before start_s"):
        write_annotations(bad, path, name, **WRITE_OPTIONS.get(name, {}))
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_named(tmp_path):
    for name in sorted(FORMATS):
        with pytest.raises(EventTableError, match=r"nope\.txt: annotation file not found"):
            read_annotations(tmp_path / "nope.txt", name)


def test_a_notmat_with_a_tab_label_converts_to_raven(tmp_path):
    import scipy.io

    source = tmp_path / "song.wav.not.mat"
    labels = "a\tb"  # evsonganaly saved a tab as a syllable label
    onsets, offsets = [100.0, 300.0, 500.0], [200.0, 400.0, 600.0]
    scipy.io.savemat(source, {"onsets": onsets, "offsets": offsets, "labels": labels, "Fs": 32e3})
    events = read_annotations(source, "notmat")
    with pytest.warns(UserWarning, match=r"1 cell\(s\) held a tab.*'\\t' -> '\\\\t'"):
        write_annotations(events, tmp_path / "song.selections.txt", "raven")
    back = read_annotations(tmp_path / "song.selections.txt", "raven")
    assert list(back["label"]) == ["a", "\\t", "b"] and len(back) == len(events)


@pytest.mark.parametrize("name", sorted(WRITABLE))
def test_every_writer_writes_every_readable_table(tmp_path, name):
    """Labels that some format cannot hold are written in a form it can, with a warning."""
    rows = [(0.0, 1.0, "a\tb"), (0.5, 1.5, ""), (2.0, 2.5, "Starttime"), (3.0, 3.5, "a\nb")]
    events = make_events(
        [{"start_s": s, "end_s": e, "label": x} for s, e, x in rows], recording="rec.wav"
    )
    path = tmp_path / f"rec{format_module(name).SUFFIX}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the formats that rename say so
        write_annotations(events, path, name, **WRITE_OPTIONS.get(name, {}))
    back = read_annotations(path, name)
    assert len(back) == len(events)
    assert sorted(back["start_s"].tolist()) == pytest.approx([0.0, 0.5, 2.0, 3.0], abs=1e-4)
