"""Window sampler and unlabeled stream: exact window arithmetic, clipped events, balancing,
annotated regions only, disjoint shares per rank and worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from biomae.annotations import make_events
from biomae.datasets.catalog import Catalog
from biomae.datasets.windows import (
    UnlabeledStream,
    WindowConfig,
    WindowDataset,
    collate_windows,
    events_frame,
)

RATE = 4000


def ramp(path: Path, duration_s: float) -> Path:
    """Audio whose sample k is k / n (so a window's first sample tells its start)."""
    n = round(duration_s * RATE)
    sf.write(path, np.arange(n, dtype=np.float32) / n, RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    root = tmp_path_factory.mktemp("windows")
    paths = [ramp(root / f"r{i}.wav", d) for i, d in enumerate((20.0, 12.0, 6.0, 3.0))]
    recordings = pd.DataFrame(
        {
            "path": [str(p) for p in paths],
            "annotation": ["full", "partial", "full", "none"],
            "regions": [None, [[2.0, 10.0]], None, None],
        }
    )
    events = make_events(
        {
            "recording": [str(paths[0])] * 3 + [str(paths[1])] * 2 + [str(paths[2])],
            "start_s": [1.0, 4.5, 15.0, 3.0, 9.5, 0.5],
            "end_s": [2.0, 5.5, 15.5, 4.0, 11.0, 1.0],
            "label": ["a", "b", "c", "d", "e", "f"],
        }
    )
    catalog = Catalog(root / "cat")
    catalog.add("toy", recordings, events)
    return catalog


def dataset(catalog: Catalog, **options) -> WindowDataset:
    options = {"window_s": 2.0, "sample_rate": RATE, "windows_per_epoch": 64, **options}
    return WindowDataset(catalog.recordings(), catalog.events(), WindowConfig(**options))


def test_window_audio_and_clipped_events(catalog):
    ds = dataset(catalog)
    region = int(np.flatnonzero(ds.regions[:, 0] == 0)[0])  # r0.wav, whole file
    item = ds.window(region, 4 * RATE)  # [4 s, 6 s)
    n = 20 * RATE
    assert item["audio"].dtype == torch.float32 and item["audio"].shape == (2 * RATE,)
    assert item["audio"][0].item() == pytest.approx(4 * RATE / n)
    events = item["events"]
    assert events["label"].tolist() == ["b"]
    assert events[["start_s", "end_s", "kept_fraction"]].iloc[0].tolist() == [0.5, 1.5, 1.0]
    clipped = ds.window(region, round(1.5 * RATE))["events"]  # [1.5, 3.5): half of "a"
    assert clipped["label"].tolist() == ["a"]
    assert clipped[["start_s", "end_s", "kept_fraction"]].iloc[0].tolist() == [0.0, 0.5, 0.5]


def test_windows_stay_inside_annotated_regions(catalog):
    ds = dataset(catalog, positive_fraction=None, windows_per_epoch=300)
    ids = catalog.recordings()["recording_id"].tolist()
    for item in ds:
        rec = ids.index(item["recording_id"])
        start_s = item["start_sample"] / RATE
        assert rec != 3  # unlabeled recording never sampled
        if rec == 1:  # partial: only inside [2, 10]
            assert 2.0 <= start_s and start_s + 2.0 <= 10.0
        assert (item["events"]["end_s"] <= 2.0).all() and (item["events"]["start_s"] >= 0).all()
        if rec == 1:
            assert (item["events"]["end_s"] <= 10.0 - start_s + 1e-9).all()  # clipped at region


def test_positive_fraction_is_exact_and_negatives_are_empty(catalog):
    ds = dataset(catalog, positive_fraction=0.25, windows_per_epoch=80)
    with_events = [len(item["events"]) > 0 for item in ds]
    assert sum(with_events) == 20


def test_short_region_is_zero_padded(tmp_path):
    path = ramp(tmp_path / "short.wav", 1.0)
    catalog = Catalog(tmp_path / "cat")
    events = make_events({"recording": [str(path)], "start_s": [0.2], "end_s": [0.4]})
    catalog.add("toy", pd.DataFrame({"path": [str(path)], "annotation": ["full"]}), events)
    item = next(iter(dataset(catalog, positive_fraction=1.0)))
    assert item["n_valid"] == RATE and item["start_sample"] == 0
    assert (item["audio"][RATE:] == 0).all() and item["audio"][RATE - 1] > 0.99


def test_no_negatives_available_fails_clearly(catalog):
    with pytest.raises(ValueError, match="event-free"):
        dataset(catalog, window_s=10.0, positive_fraction=0.5)


def test_ranks_take_disjoint_shares_of_the_same_plan(catalog):
    full = dataset(catalog)
    plan = {(int(r), int(s)) for r, s in zip(*full.plan(), strict=False)}
    seen = []
    for rank in range(3):
        ds = WindowDataset(
            catalog.recordings(), catalog.events(), full.config, rank=rank, world_size=3
        )
        seen += [(item["recording_id"], item["start_sample"]) for item in ds]
        assert len(ds) == len(range(rank, 64, 3))
    assert len(seen) == 64
    by_id = dict(zip(full.recording_ids, range(len(full.recording_ids)), strict=False))
    regions = {(int(rec), s) for (rec, s) in ((by_id[i], s) for i, s in seen)}
    assert regions == {(int(full.regions[r, 0]), s) for r, s in plan}


def test_epochs_differ_and_repeat(catalog):
    ds = dataset(catalog)
    first = ds.plan(0)[1]
    assert (ds.plan(0)[1] == first).all() and not (ds.plan(1)[1] == first).all()


def test_span_reading_matches_cached_audio(catalog):
    cached = dataset(catalog)
    uncached = dataset(catalog, cache_file_max_s=0)
    for region, start in zip(*cached.plan(), strict=False):
        a = cached.window(int(region), int(start))["audio"]
        b = uncached.window(int(region), int(start))["audio"]
        assert torch.equal(a, b)


def test_columns_mode_and_collate(catalog):
    ds = dataset(catalog, events_as="columns")
    items = [item for _, item in zip(range(5), ds, strict=False)]
    batch = collate_windows(items)
    assert batch["audio"].shape == (5, 2 * RATE) and batch["start_sample"].dtype == torch.int64
    assert isinstance(batch["events"][0], dict)
    frame = events_frame(batch["events"][0])
    assert "kept_fraction" in frame.columns and list(frame.columns)[:2] == ["recording", "start_s"]


@pytest.mark.distributed
def test_dataloader_workers_split_the_plan(catalog):
    ds = dataset(catalog, events_as="columns")
    loader = torch.utils.data.DataLoader(
        ds, batch_size=8, num_workers=2, collate_fn=collate_windows
    )
    got = sorted(
        (r, int(s))
        for b in loader
        for r, s in zip(b["recording_id"], b["start_sample"], strict=False)
    )
    expected = sorted(
        (ds.recording_ids[int(ds.regions[r, 0])], int(s)) for r, s in zip(*ds.plan(), strict=False)
    )
    assert got == expected


def test_unlabeled_stream_resamples_and_shards(catalog):
    recordings = catalog.recordings()
    config = WindowConfig(window_s=1.0, sample_rate=2 * RATE)
    stream = UnlabeledStream(recordings, config, n_windows=40)
    items = list(stream)
    assert len(items) == 40 and all(i["audio"].shape == (2 * RATE,) for i in items)
    assert {i["recording_id"] for i in items} <= set(recordings["recording_id"])
    shares = [
        [
            (i["recording_id"], i["start_sample"])
            for i in UnlabeledStream(recordings, config, n_windows=40, rank=r, world_size=2)
        ]
        for r in range(2)
    ]
    assert sorted(shares[0] + shares[1]) == sorted(
        (i["recording_id"], i["start_sample"]) for i in items
    )
    assert "events" not in collate_windows(items[:4])


def test_config_validation():
    with pytest.raises(ValueError, match="positive_fraction"):
        WindowConfig(positive_fraction=1.5)
    with pytest.raises(ValueError, match="sample_rate"):
        WindowConfig(sample_rate=0)
    with pytest.raises(ValueError, match="events_as"):
        WindowConfig(events_as="list")


def test_editing_an_item_in_place_leaves_the_cache_alone(catalog):
    ds = dataset(catalog)
    region, start = (int(v[0]) for v in ds.plan())
    first = ds.window(region, start)["audio"]
    expected = first.clone()
    first.zero_()
    assert torch.equal(ds.window(region, start)["audio"], expected)
