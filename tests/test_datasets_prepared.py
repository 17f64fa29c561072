"""Prepared audio: recordings decoded and resampled once into a store that the training windows
memory-map (their windows: tests/test_train_data.py, tests/test_finetune.py); stored samples
identical to decoding, resumable, bad files reported and skipped."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotations import make_events
from biomae.audio import load
from biomae.cli import main
from biomae.datasets.catalog import Catalog
from biomae.datasets.prepared import PreparedAudio

RATE = 8000  # the model's rate; the files are at 22,050 Hz (stereo), 16 kHz and 8 kHz


@pytest.fixture()
def catalog(tmp_path) -> Catalog:
    rng = np.random.default_rng(0)
    paths = []
    for i, (rate, channels, duration_s) in enumerate(((22050, 2, 9.0), (16000, 1, 5.0),
                                                      (8000, 1, 1.5))):  # fmt: skip
        path = tmp_path / "audio" / f"r{i}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, rng.uniform(-0.5, 0.5, (round(duration_s * rate), channels)), rate)
        paths.append(str(path))
    events = make_events(
        {"recording": paths, "start_s": [1.0, 2.0, 0.2], "end_s": [2.0, 3.0, 0.4],
         "label": ["a", "b", "c"]}
    )  # fmt: skip
    catalog = Catalog(tmp_path / "cat")
    catalog.add("toy", pd.DataFrame({"path": paths, "annotation": "full"}), events)
    return catalog


def test_stored_samples_are_the_decoded_audio(catalog):
    summary = catalog.prepare_audio(RATE, dtype="float32", workers=0)
    assert (summary.n_written, summary.n_present, summary.failed) == (3, 0, [])
    assert summary.audio_s == pytest.approx(9.0 + 5.0 + 1.5, abs=1e-3)
    store = catalog.prepared_audio(RATE, "float32")
    recordings = catalog.recordings()
    for path, stored in zip(recordings["path"], store.lookup(recordings), strict=True):
        decoded, _ = load(path, sample_rate=RATE)  # mono mixdown, soxr HQ
        np.testing.assert_array_equal(np.asarray(store.open(stored)), decoded)
    assert (store.folder / "store.json").exists()


def test_prepare_resumes_and_stores_the_same_audio_once(catalog):
    recordings = catalog.recordings()
    store = catalog.prepared_audio(RATE)
    twice = pd.concat([recordings, recordings.assign(path="elsewhere.flac")])  # same checksums
    assert store.prepare(twice, workers=0).n_written == 3
    again = catalog.prepare_audio(RATE, workers=0)
    assert (again.n_written, again.n_present) == (0, 3)
    first = store.lookup(recordings)[0]
    stamp = os.stat(first).st_mtime_ns
    os.remove(store.lookup(recordings)[1])
    resumed = catalog.prepare_audio(RATE, workers=0)
    assert (resumed.n_written, resumed.n_present) == (1, 2)
    assert os.stat(first).st_mtime_ns == stamp  # not rewritten
    only = catalog.prepare_audio(16000, where="sample_rate = 16000", workers=0)
    assert only.n_written == 1
    unknown = store.prepare(recordings.assign(checksum=[None, "", "../x"]), workers=0)
    assert (
        unknown.n_written == 0
        and [reason for _, reason in unknown.failed] == ["no checksum in its catalog row"] * 3
    )


def test_a_stored_file_of_the_wrong_length_is_not_used(catalog):
    catalog.prepare_audio(RATE, workers=0)
    store = catalog.prepared_audio(RATE)
    recordings = catalog.recordings()
    path = store.lookup(recordings)[0]
    with open(path, "r+b") as handle:
        handle.truncate(1000)  # e.g. copied in part by hand
    assert store.lookup(recordings)[0] is None
    with pytest.warns(UserWarning, match="1 of 3 recordings are not prepared .* decoded instead"):
        found = store.lookup(recordings, warn_missing=True)
    assert [f is None for f in found] == [True, False, False]  # the first is decoded again
    assert catalog.prepare_audio(RATE, workers=0).n_written == 1  # and re-prepared


def test_a_corrupt_file_is_reported_and_skipped(catalog, capsys):
    recordings = catalog.recordings()
    bad = recordings["path"].iloc[0]
    data = bytearray(open(bad, "rb").read())
    n = len(data)  # garbage over the middle: the header and the end still read; decoding fails
    data[n // 3 : n // 2] = np.random.default_rng(1).bytes(n // 2 - n // 3)
    open(bad, "wb").write(data)
    summary = catalog.prepare_audio(RATE, workers=2)
    assert summary.n_written == 2 and [path for path, _ in summary.failed] == [bad]
    assert "AudioError" in summary.failed[0][1]
    store = catalog.prepared_audio(RATE)
    assert store.lookup(recordings)[0] is None
    assert not list(store.folder.rglob("*.part"))  # no half-written file left behind
    code = main(["data", "prepare", "--sample-rate", str(RATE), "--catalog", str(catalog.root)])
    captured = capsys.readouterr()
    assert code == 1 and f"skipped {bad}: AudioError" in captured.err
    assert "0 recording(s)" in captured.out and "2 already prepared; 1 failed" in captured.out


def test_cli_import_with_prepare_and_bad_options(tmp_path, capsys):
    folder = tmp_path / "field"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros(4000), 4000)
    catalog = str(tmp_path / "cat")
    code = main(["data", "add", str(folder), "--format", "raven", "--catalog", catalog,
                 "--prepare", "2000"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "prepared 1 recording(s)" in out and "2000hz-int16" in out
    assert len(list((tmp_path / "cat" / "prepared" / "2000hz-int16").rglob("*.pcm"))) == 1
    assert main(["data", "prepare", "--sample-rate", "0", "--catalog", catalog]) == 2
    assert "sample_rate must be a positive integer" in capsys.readouterr().err
    code = main(["data", "prepare", "--sample-rate", "8000", "--where", "no_column = 1",
                 "--catalog", catalog])  # fmt: skip
    assert code == 2 and "no_column" in capsys.readouterr().err


def test_store_refuses_a_bad_dtype_and_path(catalog):
    store = PreparedAudio(catalog.root / "prepared", 16000)
    with pytest.raises(ValueError, match="dtype"):
        PreparedAudio(catalog.root, 8000, "int8")
    with pytest.raises(ValueError, match="not a catalog checksum"):
        store.path("../x")


def test_prune_deletes_files_of_recordings_gone_from_the_catalog(catalog, capsys):
    catalog.prepare_audio(RATE, workers=0)
    store = catalog.prepared_audio(RATE)
    recordings = catalog.recordings()
    gone = store.lookup(recordings)[0]
    assert store.prune(recordings.iloc[1:]) == [Path(gone)]
    assert store.lookup(recordings)[0] is None and None not in store.lookup(recordings.iloc[1:])
    code = main(["data", "prepare", "--sample-rate", str(RATE), "--prune",
                 "--catalog", str(catalog.root)])  # fmt: skip
    assert code == 0 and "pruned 0 stored file(s)" in capsys.readouterr().out
    assert None not in store.lookup(recordings)  # re-prepared, nothing stale


def test_prepare_refuses_a_full_disk_and_an_empty_catalog(catalog, tmp_path, monkeypatch, capsys):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(OSError, match=r"3 recording\(s\) needs 0\.2 MB, only 0\.0 MB free"):
        catalog.prepare_audio(RATE, workers=0)
    assert not catalog.prepared_audio(RATE).folder.exists()  # nothing written
    empty = str(tmp_path / "nothing")
    assert main(["data", "prepare", "--sample-rate", "8000", "--catalog", empty]) == 2
    assert "is empty" in capsys.readouterr().err
