"""WindowLoader (batches built in workers, reusable shared-memory slots) and int16 transport: the
same windows, order and sharding as the per-item path, values within 16-bit quantisation."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from biomae.annotations import make_events
from biomae.datasets.catalog import Catalog
from biomae.datasets.window_batches import (
    _EVENT_OUT,
    _frames,
    _pack,
    _PackedColumns,
    _unpack,
    events_frame,
)
from biomae.datasets.window_source import SharedCache
from biomae.datasets.windows import (
    UnlabeledStream,
    WindowConfig,
    WindowDataset,
    WindowLoader,
    collate_windows,
    to_transport,
)

RATE = 4000


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """Noise recordings of 20, 6 and 1.5 s (the last shorter than a window: padded windows)."""
    root = tmp_path_factory.mktemp("batches")
    rng = np.random.default_rng(0)
    paths = []
    for i, duration_s in enumerate((20.0, 6.0, 1.5)):
        path = root / f"n{i}.wav"
        audio = rng.uniform(-0.9, 0.9, round(duration_s * RATE)).astype(np.float32)
        sf.write(path, audio, RATE, subtype="FLOAT")
        paths.append(str(path))
    events = make_events(
        {
            "recording": [paths[0]] * 2 + [paths[1], paths[2]],
            "start_s": [1.0, 12.0, 2.0, 0.2],
            "end_s": [2.0, 12.5, 3.0, 0.4],
            "label": ["a", "b", "c", "d"],
        }
    )
    catalog = Catalog(root / "cat")
    catalog.add("toy", pd.DataFrame({"path": paths, "annotation": "full"}), events)
    return catalog


def dataset(catalog: Catalog, **options) -> WindowDataset:
    options = {"window_s": 2.0, "sample_rate": RATE, "windows_per_epoch": 50, **options}
    options.setdefault("positive_fraction", None)
    return WindowDataset(catalog.recordings(), catalog.events(), WindowConfig(**options))


def assert_same_batches(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a["audio"].dtype == torch.float32 and torch.equal(a["audio"], b["audio"])
        for key in ("start_sample", "n_valid"):
            assert a[key].dtype == torch.int64 and torch.equal(a[key], b[key])
        assert a["recording_id"] == b["recording_id"] and a["sample_rate"] == b["sample_rate"]
        assert ("events" in a) == ("events" in b)
        for ea, eb in zip(a.get("events", []), b.get("events", []), strict=True):
            pd.testing.assert_frame_equal(ea, eb)


def per_item_batches(ds, batch_size: int) -> list[dict]:
    items = list(ds)
    return [collate_windows(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


@pytest.mark.parametrize("transport_dtype", ["float32", "int16"])
def test_in_process_batches_equal_collated_items(catalog, transport_dtype):
    ds = dataset(catalog, transport_dtype=transport_dtype)
    loader = WindowLoader(ds, batch_size=8, num_workers=0)
    got = list(loader)
    assert len(got) == len(loader) == 7  # 50 windows: 6 x 8 + 2
    assert_same_batches(got, per_item_batches(ds, 8))


def test_int16_transport_is_16_bit_quantisation(catalog):
    exact = dataset(catalog)
    quantised = dataset(catalog, transport_dtype="int16")
    for a, b in zip(exact, quantised, strict=True):
        assert b["audio"].dtype == torch.float32 and b["n_valid"] == a["n_valid"]
        assert (b["audio"] - a["audio"]).abs().max() <= 0.5 / 32768 + 1e-9
        assert torch.equal(b["audio"] * 32768, (b["audio"] * 32768).round())  # on the int16 grid
        assert (b["audio"][b["n_valid"] :] == 0).all()


def test_int16_batch_matches_float32_within_quantisation(catalog):
    exact = next(iter(WindowLoader(dataset(catalog), batch_size=16, num_workers=0)))
    loader = WindowLoader(dataset(catalog, transport_dtype="int16"), batch_size=16, num_workers=0)
    quantised = next(iter(loader))
    assert torch.equal(exact["start_sample"], quantised["start_sample"])
    assert (exact["audio"] - quantised["audio"]).abs().max() <= 0.5 / 32768 + 1e-9


def test_reused_slots_zero_the_padding(catalog):
    """One slot reused for every batch: a padded window after a full one has zeros past n_valid."""
    ds = dataset(catalog, window_s=3.0, windows_per_epoch=60, transport_dtype="int16")
    batches = list(WindowLoader(ds, batch_size=1, num_workers=0))
    padded = [b for b in batches if b["n_valid"][0] < 3 * RATE]
    assert padded and len(padded) < len(batches)
    for batch in padded:
        assert (batch["audio"][0, batch["n_valid"][0] :] == 0).all()
        assert batch["audio"][0, : batch["n_valid"][0]].abs().sum() > 0


def test_kept_batches_are_not_overwritten(catalog):
    ds = dataset(catalog, transport_dtype="int16")
    batches = list(WindowLoader(ds, batch_size=4, num_workers=0))
    expected = per_item_batches(ds, 4)
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(batches, expected, strict=True))


@pytest.mark.distributed
def test_workers_split_the_plan_and_set_epoch_reaches_them(catalog):
    ds = dataset(catalog, events_as="columns", transport_dtype="int16")
    loader = WindowLoader(ds, batch_size=8, num_workers=2, prefetch_factor=1)
    reference = dataset(catalog, events_as="columns", transport_dtype="int16")
    for epoch in (0, 1, 0):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == len(loader)
        got = {}  # (recording_id, start_sample) -> audio row
        for batch in batches:
            for rid, start, row in zip(
                batch["recording_id"], batch["start_sample"].tolist(), batch["audio"], strict=True
            ):
                got[rid, start] = row
        assert sum(len(b["recording_id"]) for b in batches) == 50
        regions, starts = reference.plan(epoch)
        expected = {}
        for region, start in zip(regions.tolist(), starts.tolist(), strict=True):
            rid = reference.recording_ids[int(reference.regions[region, 0])]
            expected[rid, start] = reference.window(region, start)["audio"]
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[key], expected[key]) for key in got)


@pytest.mark.distributed
def test_worker_batches_equal_the_per_item_dataloader(catalog):
    ds = dataset(catalog, events_as="columns")
    per_item = torch.utils.data.DataLoader(
        ds, batch_size=8, num_workers=2, collate_fn=collate_windows
    )
    expected = list(per_item)
    got = list(WindowLoader(ds, batch_size=8, num_workers=2))
    assert [b["recording_id"] for b in got] == [b["recording_id"] for b in expected]
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["n_valid"], b["n_valid"])
        assert a["events"][0].keys() == b["events"][0].keys()


def test_unlabeled_stream_batches(catalog):
    config = WindowConfig(window_s=1.0, sample_rate=2 * RATE, transport_dtype="int16")
    stream = UnlabeledStream(catalog.recordings(), config, n_windows=30)
    loader = WindowLoader(stream, batch_size=8, num_workers=0)
    got = list(loader)
    assert len(got) == len(loader) == 4 and "events" not in got[0]
    assert_same_batches(got, per_item_batches(stream, 8))
    with pytest.raises(TypeError, match="endless"):
        len(WindowLoader(UnlabeledStream(catalog.recordings(), config), num_workers=0))


def test_int16_clips_at_full_scale():
    audio = np.array([-1.5, -1.0, 0.99999, 1.0, 1.5], dtype=np.float32)
    assert to_transport(audio, "int16").tolist() == [-32768, -32768, 32767, 32767, 32767]
    assert to_transport(audio, "float32") is audio


def test_transport_dtype_is_validated():
    with pytest.raises(ValueError, match="transport_dtype"):
        WindowConfig(transport_dtype="int8")


def test_shared_cache_decodes_a_file_when_first_needed(catalog):
    ds = dataset(catalog, transport_dtype="int16")
    cache = SharedCache.for_dataset(ds)
    assert cache.recs.tolist() == [0, 1, 2] and cache.get(1) is None  # nothing decoded up front
    assert np.array_equal(cache.fetch(ds, 1), ds._decode(1))
    assert cache.lengths.tolist() == [cache.UNCLAIMED, len(ds._decode(1)), cache.UNCLAIMED]
    assert cache.fetch(ds, 7) is None  # not a cached recording


def test_shared_cache_waits_for_a_file_another_process_decodes(catalog):
    ds = dataset(catalog)
    cache = SharedCache.for_dataset(ds)
    cache.lengths[2] = cache.CLAIMED  # as if another worker were decoding it
    ds._decode_into = None  # fetch must not decode it again

    def other_worker():
        audio = dataset(catalog)._decode(2)
        cache.arena.numpy()[cache.offsets[2] : cache.offsets[2] + len(audio)] = audio
        cache.lengths[2] = len(audio)

    thread = threading.Thread(target=other_worker)
    thread.start()
    got = cache.fetch(ds, 2)
    thread.join()
    assert np.array_equal(got, dataset(catalog)._decode(2))


def test_a_failed_decode_leaves_the_file_to_the_next_process(catalog, monkeypatch):
    ds = dataset(catalog)
    cache = SharedCache.for_dataset(ds)

    def broken(rec, out):
        raise RuntimeError(f"cannot decode {rec}")

    monkeypatch.setattr(ds, "_decode_into", broken)
    with pytest.raises(RuntimeError, match="cannot decode 0"):
        cache.fetch(ds, 0)
    cache.decode_ahead(ds, threading.Event())  # errors are left to fetch
    assert (cache.lengths == cache.UNCLAIMED).all()
    monkeypatch.undo()
    assert np.array_equal(cache.fetch(ds, 0), ds._decode(0))


def test_decode_ahead_decodes_the_share_of_the_epoch_until_stopped(catalog):
    ds = dataset(catalog, transport_dtype="int16", cache_file_max_s=10.0)  # 20-s file: spans
    cache = SharedCache.for_dataset(ds)
    stop = threading.Event()
    stop.set()
    cache.decode_ahead(ds, stop)
    assert (cache.lengths == cache.UNCLAIMED).all()
    cache.decode_ahead(ds, threading.Event())
    for rec in (1, 2):
        assert np.array_equal(cache.get(rec), ds._decode(rec))
    assert cache.start_ahead(ds) is None  # nothing left to decode: no thread


@pytest.mark.parametrize("transport_dtype", ["float32", "int16"])
def test_decode_into_equals_decode(catalog, transport_dtype):
    ds = dataset(catalog, transport_dtype=transport_dtype)
    for rec in range(3):
        expected = ds._decode(rec)
        out = np.zeros(len(expected) + 2, dtype=transport_dtype)
        assert ds._decode_into(rec, out) == len(expected)
        assert np.array_equal(out[: len(expected)], expected) and not out[len(expected) :].any()
        assert ds._decode_into(rec, out[:5]) == 5  # cut at the room there is


def test_packed_event_columns_round_trip():
    tables = [
        {"start_s": np.array([0.5, 1.0]), "label": np.array(["a", None], dtype=object)},
        {"start_s": np.array([], dtype=float), "label": np.array([], dtype=object)},
        {"start_s": np.array([2.0]), "label": np.array(["c"], dtype=object)},
    ]
    packed = _pack(tables)
    assert isinstance(packed, _PackedColumns)
    got = _unpack(pickle.loads(pickle.dumps(packed)))
    assert len(got) == 3
    for a, b in zip(got, tables, strict=True):
        assert a.keys() == b.keys()
        assert all(a[c].dtype == b[c].dtype and a[c].tolist() == b[c].tolist() for c in a)
    mixed = [tables[0], {"start_s": np.array([1], dtype=np.int64), "label": tables[0]["label"]}]
    assert _pack(mixed) is mixed  # dtypes differ: sent as they are
    frames = [pd.DataFrame(t) for t in tables]
    assert _pack(frames) is frames and _unpack(frames) is frames


def test_event_frames_are_sliced_from_one_batch_frame():
    columns = {c: np.arange(3.0) for c in _EVENT_OUT}
    columns["label"] = np.array(["a", "b", "c"], dtype=object)
    spans = [(0, 2), (0, 0), (0, 0), (2, 3)]  # windows with 2, 0, 0 and 1 events
    tables = [{c: a[lo:hi] for c, a in columns.items()} for lo, hi in spans]
    got = _frames(_pack(tables))
    for frame, table in zip(got, tables, strict=True):
        pd.testing.assert_frame_equal(frame, events_frame(table))  # index from 0, same dtypes
    got[1].loc[0] = 1.0  # editing one window's table leaves the others as they were
    got[0].loc[0, "start_s"] = 9.0
    assert len(got[2]) == 0 and got[3]["start_s"].tolist() == [2.0]
    assert _frames(tables[:2])[0].equals(got[0].assign(start_s=[0.0, 1.0]))


@pytest.mark.parametrize("num_workers", [0, pytest.param(2, marks=pytest.mark.distributed)])
def test_event_columns_equal_the_per_item_path(catalog, num_workers):
    ds = dataset(catalog, events_as="columns", transport_dtype="int16")
    got = list(WindowLoader(ds, batch_size=8, num_workers=num_workers))
    items = sorted(dataset(catalog, events_as="columns", transport_dtype="int16"), key=_key)
    windows = sorted(
        (
            {"recording_id": rid, "start_sample": int(start), "events": events}
            for batch in got
            for rid, start, events in zip(
                batch["recording_id"], batch["start_sample"], batch["events"], strict=True
            )
        ),
        key=_key,
    )
    assert len(windows) == len(items) == 50
    for window, item in zip(windows, items, strict=True):
        assert _key(window) == _key(item) and window["events"].keys() == item["events"].keys()
        pd.testing.assert_frame_equal(pd.DataFrame(window["events"]), pd.DataFrame(item["events"]))


def _key(window: dict) -> tuple:
    return window["recording_id"], int(window["start_sample"])


def test_shared_cache_holds_the_decoded_files(catalog):
    ds = dataset(catalog, transport_dtype="int16")
    batches = list(WindowLoader(ds, batch_size=8, num_workers=0))
    assert (ds.shared_cache.lengths >= 0).all() and not ds._cache  # no per-worker copy
    for rec in ds.shared_cache.recs.tolist():
        assert np.array_equal(ds.shared_cache.get(rec), ds._decode(rec))
    assert_same_batches(batches, per_item_batches(dataset(catalog, transport_dtype="int16"), 8))


def test_without_shared_cache_when_files_do_not_fit(catalog):
    small = dataset(catalog, cache_bytes=20 * RATE * 4)  # the 20-s file alone fills it
    assert SharedCache.for_dataset(small) is None
    long_files = dataset(catalog, cache_file_max_s=10.0)  # the 20-s file is read span by span
    assert SharedCache.for_dataset(long_files).recs.tolist() == [1, 2]
    for ds in (small, long_files):
        batches = list(WindowLoader(ds, batch_size=8, num_workers=0))
        assert_same_batches(batches, per_item_batches(dataset(catalog), 8))
