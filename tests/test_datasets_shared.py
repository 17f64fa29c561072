"""All of ../shared/data imported through the ``shared`` adapter agrees with its index CSVs, and
the real catalog feeds the splitter and the window sampler."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from biomae.datasets.catalog import Catalog
from biomae.datasets.splits import assign_splits
from biomae.datasets.windows import WindowConfig, WindowDataset


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


def test_real_catalog_feeds_the_window_sampler(real_catalog):
    config = WindowConfig(
        window_s=2.0, sample_rate=16000, windows_per_epoch=16, events_as="columns"
    )
    dataset = WindowDataset(real_catalog.recordings(), real_catalog.events(), config)
    items = list(dataset)
    assert len(items) == 16 and sum(len(i["events"]["start_s"]) > 0 for i in items) == 8
    assert all(i["audio"].shape == (32000,) for i in items)


def test_real_recordings_prepared_feed_the_same_windows(real_catalog):
    """Real files at 22.05-312.5 kHz, stereo among them, prepared at 16 kHz (int16): the sampler's
    windows equal the decoded ones, and an unlabeled stream reads them all."""
    from biomae.datasets.windows import UnlabeledStream

    where = "source IN ('bellbird_mimicry', 'batdetect2_contrib', 'bmz_noise') OR channels > 1"
    summary = real_catalog.prepare_audio(16000, where=where, workers=2)
    assert summary.n_written > 10 and summary.failed == []
    chosen = real_catalog.query(f"SELECT * FROM recordings WHERE {where}")
    assert chosen["sample_rate"].nunique() >= 3 and (chosen["channels"] > 1).any()
    store = real_catalog.prepared_audio(16000)
    config = WindowConfig(window_s=2.0, sample_rate=16000, transport_dtype="int16")
    mapped = UnlabeledStream(chosen, config, n_windows=12, prepared=store)
    decoded = UnlabeledStream(chosen, config, n_windows=12)
    assert mapped.n_prepared == len(chosen)
    for a, b in zip(mapped, decoded, strict=True):
        assert a["recording_id"] == b["recording_id"] and a["audio"].equal(b["audio"])
