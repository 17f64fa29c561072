"""All of ../shared/data imported through the ``shared`` adapter agrees with its index CSVs, and
the real catalog feeds the splitter and the training windows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from biomae.datasets.catalog import Catalog
from biomae.datasets.splits import assign_splits


@pytest.fixture(scope="module")
def real_catalog(shared_data, tmp_path_factory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("shared") / "cat")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the index repeats one row; one box reaches past Nyquist
        catalog.import_dataset("shared", shared_data)
    return catalog


def test_shared_import_matches_the_index(real_catalog, shared_data):
    index = shared_data / "index"
    files = pd.read_csv(index / "files.csv").drop_duplicates()
    events = pd.read_csv(index / "events.csv")
    clips = pd.read_csv(index / "clips.csv")
    recordings = real_catalog.recordings()
    assert len(recordings) == files["file"].nunique() + len(clips)
    assert len(real_catalog.events()) == len(events) + len(clips)
    expected_s = files["duration_s"].sum() + clips["duration_s"].sum()
    assert recordings["duration_s"].sum() == pytest.approx(expected_s, abs=0.01 * len(recordings))
    per_source = real_catalog.query(
        "SELECT source, count(*) AS n FROM events WHERE note <> 'clip label' GROUP BY 1"
    ).set_index("source")["n"]
    assert (
        per_source.sort_index().to_dict() == events.groupby("source").size().sort_index().to_dict()
    )
    status = recordings["annotation"].value_counts().to_dict()
    assert status["clip"] == len(clips) and status["full"] == (files["annotation"] == "full").sum()
    by_rate = real_catalog.query("SELECT count(DISTINCT sample_rate) AS n FROM recordings")
    assert by_rate["n"].iloc[0] == len(set(files["sr"]) | set(clips["sr"]))


def test_real_catalog_splits_keep_each_bird_in_one_split(real_catalog):
    recordings = real_catalog.recordings()
    splits = assign_splits(recordings, seed=0)
    birds = recordings["individual"] != ""
    assert birds.sum() > 100
    assert (splits[birds].groupby(recordings.loc[birds, "individual"]).nunique() == 1).all()


def test_real_catalog_feeds_the_finetuning_windows(real_catalog):
    from biomae.train.finetune_data import LabeledWindows, catalog_labeled

    items, left_out = catalog_labeled(str(real_catalog.root), [])
    assert len(items) > 100 and left_out  # partially annotated recordings are left out
    batch = LabeledWindows(items, 32000, 16000, 16, seed=0, positive_fraction=0.5).batch(0)
    assert batch["audio"].shape == (16, 32000) and bool(batch["audio"].isfinite().all())
    assert 0 < sum(label is not None for label in batch["labels"]) < 16


def test_real_recordings_prepared_feed_the_same_windows(real_catalog):
    """Real files at 22.05-312.5 kHz, stereo among them, prepared at 16 kHz (int16): the training
    windows read from the store equal the whole file decoded at 16 kHz, 16-bit quantised."""
    from biomae.audio import load
    from biomae.train.data import catalog_recordings, read_window

    where = "source IN ('bellbird_mimicry', 'batdetect2_contrib', 'bmz_noise') OR channels > 1"
    summary = real_catalog.prepare_audio(16000, where=where, workers=2)
    assert summary.n_written > 10 and summary.failed == []
    chosen = real_catalog.query(f"SELECT * FROM recordings WHERE {where}")
    assert chosen["sample_rate"].nunique() >= 3 and (chosen["channels"] > 1).any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the others are not prepared
        recordings = catalog_recordings(real_catalog.root, prepared_rate=16000)
    mapped = [r for r in recordings if r.prepared is not None]
    assert len(mapped) == chosen["checksum"].nunique()
    for rec in mapped[::4]:
        whole, _ = load(rec.path, sample_rate=16000)
        start = rec.n_frames // 3
        first = start * 16000 // rec.sample_rate
        window = read_window(rec, start, 16000, 16000)  # (16000,) zero-padded at the end
        expected = np.zeros(16000, dtype=np.float32)
        part = whole[first : first + 16000]
        expected[: len(part)] = part
        quantised = np.clip(np.rint(expected * 32768), -32768, 32767) / 32768
        np.testing.assert_array_equal(window, quantised)
