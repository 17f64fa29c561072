"""The pretraining window stream: deterministic, resumable, rank/worker-sharded, split by file."""

from __future__ import annotations

import itertools
import os
import shutil

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from biomae.train import data

RATE = 8000


@pytest.fixture()
def folder(tmp_path):
    """Six short recordings at different rates / channel counts (hand-made tones)."""
    rng = np.random.default_rng(0)
    specs = [
        (16000, 1, 3.0),
        (8000, 2, 2.0),
        (22050, 1, 1.5),
        (8000, 1, 0.5),
        (44100, 1, 2.5),
        (12000, 3, 1.0),
    ]
    for i, (rate, channels, seconds) in enumerate(specs):
        n = int(rate * seconds)
        audio = 0.1 * rng.standard_normal((n, channels)).astype(np.float32)
        soundfile.write(tmp_path / f"rec{i}.flac", audio, rate)
    return tmp_path


def test_find_recordings_reads_headers_and_fails_on_empty_patterns(folder):
    recs = data.find_recordings([str(folder / "**" / "*.flac")])
    assert len(recs) == 6 and recs == sorted(recs, key=lambda r: r.path)
    assert recs[0].sample_rate == 16000 and recs[0].duration_s == pytest.approx(3.0)
    with pytest.raises(FileNotFoundError, match="matches no file"):
        data.find_recordings([str(folder / "*.wav")])


def test_split_is_by_file_stable_and_independent_of_location(folder, tmp_path_factory):
    recs = data.find_recordings([str(folder / "*.flac")])
    train, held = data.split_recordings(recs, 0.34)
    assert train and held and len(train) + len(held) == len(recs)
    assert not {r.path for r in train} & {r.path for r in held}
    moved = tmp_path_factory.mktemp("moved")
    for rec in recs:
        shutil.copy(rec.path, moved)
    train2, held2 = data.split_recordings(data.find_recordings([str(moved / "*.flac")]), 0.34)
    names = lambda rs: sorted(r.path.rsplit("/", 1)[1] for r in rs)  # noqa: E731
    assert names(held2) == names(held) and names(train2) == names(train)
    with pytest.raises(ValueError, match=">= 2 recordings"):
        data.split_recordings(recs[:1], 0.5)


def test_read_window_resamples_mixes_down_and_pads(folder):
    recs = {r.path.rsplit("/", 1)[1]: r for r in data.find_recordings([str(folder / "*.flac")])}
    stereo = recs["rec1.flac"]
    window = data.read_window(stereo, 0, 4000, RATE)  # same rate: exact mean of channels
    raw, _ = soundfile.read(stereo.path, frames=4000, dtype="float32")
    np.testing.assert_allclose(window, raw.mean(axis=1), atol=1e-7)
    short = recs["rec3.flac"]  # 0.5 s: a 1-s window is the file, then zeros
    window = data.read_window(short, 0, RATE, RATE)
    assert window.shape == (RATE,) and np.all(window[4000:] == 0) and np.any(window[:4000] != 0)
    resampled = data.read_window(recs["rec0.flac"], 16000, RATE, RATE)  # 16 kHz -> 8 kHz
    assert resampled.shape == (RATE,) and resampled.dtype == np.float32
    assert 0.02 < float(np.std(resampled)) < 0.1  # white noise keeps ~half its power


def stream(recs, **kwargs) -> data.RandomWindows:
    defaults = dict(n_samples=RATE // 2, sample_rate=RATE, batch_size=3, seed=5)
    return data.RandomWindows(recs, **{**defaults, **kwargs})


def take(dataset, n, num_workers=0):
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return list(itertools.islice(loader, n))


def test_stream_is_deterministic_resumable_and_sharded(folder):
    recs = data.find_recordings([str(folder / "*.flac")])
    full = take(stream(recs, n_fft_choices=[256, 512]), 6)
    assert [b["index"] for b in full] == list(range(6))
    assert full[0]["audio"].shape == (3, RATE // 2)
    assert {b["n_fft"] for b in full} <= {256, 512}
    again = take(stream(recs, n_fft_choices=[256, 512]), 6)
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(full, again, strict=True))
    resumed = take(stream(recs, n_fft_choices=[256, 512], start=4), 2)
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(full[4:], resumed, strict=True))
    assert [b["n_fft"] for b in resumed] == [b["n_fft"] for b in full[4:]]
    ranks = [take(stream(recs, rank=r, world_size=2), 3) for r in (0, 1)]
    assert [b["index"] for b in ranks[0]] == [0, 2, 4] and [b["index"] for b in ranks[1]] == [
        1,
        3,
        5,
    ]
    assert torch.equal(ranks[1][2]["audio"], full[5]["audio"])
    assert not torch.equal(full[0]["audio"], full[1]["audio"])


def test_workers_do_not_change_the_stream(folder):
    recs = data.find_recordings([str(folder / "*.flac")])
    alone = take(stream(recs, start=1), 4)
    workers = take(stream(recs, start=1), 4, num_workers=2)
    assert [b["index"] for b in workers] == [1, 2, 3, 4]
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(alone, workers, strict=True))
    # the pretraining loader (shared-memory slots, reused): the same batches, kept intact after
    # their slots were refilled, augmentation included
    augment = data.make_augment(0.5, 0.5, RATE)
    for num_workers in (0, 2):
        expected = take(stream(recs, start=1, augment=augment), 9)
        loader = data.BatchLoader(stream(recs, start=1, augment=augment), num_workers)
        got = list(itertools.islice(loader, 9))
        assert [b["index"] for b in got] == list(range(1, 10))
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a["audio"], b["audio"]) and a["n_fft"] == b["n_fft"]


def test_fixed_windows_are_fixed(folder):
    recs = data.find_recordings([str(folder / "*.flac")])
    a = data.fixed_windows(recs, 4, RATE // 4, RATE, seed=1)
    b = data.fixed_windows(recs, 4, RATE // 4, RATE, seed=1)
    assert a.shape == (4, RATE // 4) and torch.equal(a, b)
    assert not torch.equal(a, data.fixed_windows(recs, 4, RATE // 4, RATE, seed=2))


def test_augmentation_is_off_by_default_and_deterministic(folder):
    assert data.make_augment(0.0, 0.0, RATE) is None
    recs = data.find_recordings([str(folder / "*.flac")])
    plain = stream(recs).batch(3)["audio"]
    augment = data.make_augment(1.0, 1.0, RATE)
    a = stream(recs, augment=augment).batch(3)["audio"]
    b = stream(recs, augment=augment).batch(3)["audio"]
    assert torch.equal(a, b) and a.shape == plain.shape
    assert not torch.equal(a, plain) and torch.isfinite(a).all()


def test_catalog_recordings_skip_duplicates(folder, tmp_path_factory):
    import pandas as pd

    root = tmp_path_factory.mktemp("catalog")
    recs = data.find_recordings([str(folder / "*.flac")])
    table = pd.DataFrame(
        {
            "path": [r.path for r in recs],
            "sample_rate": [r.sample_rate for r in recs],
            "n_samples": [r.n_frames for r in recs],
            "duplicate_of": [""] * (len(recs) - 1) + ["some-id"],
        }
    )
    table.to_parquet(root / "recordings.parquet")
    assert data.catalog_recordings(root) == recs[:-1]
    with pytest.raises(FileNotFoundError, match="recordings.parquet"):
        data.catalog_recordings(folder)


def test_prepared_recordings_are_memory_mapped(folder, tmp_path_factory):
    import pandas as pd

    from biomae.annotations import make_events
    from biomae.audio import load
    from biomae.datasets.catalog import Catalog

    catalog = Catalog(tmp_path_factory.mktemp("catalog"))
    paths = sorted(str(p) for p in folder.glob("*.flac"))
    catalog.add("toy", pd.DataFrame({"path": paths}), make_events([]))
    assert catalog.prepare_audio(RATE, where="sample_rate <> 44100", workers=0).n_written == 5
    plain = data.catalog_recordings(catalog.root)
    with pytest.warns(UserWarning, match="1 of 6 recordings are not prepared"):
        recs = data.catalog_recordings(catalog.root, prepared_rate=RATE)
    assert [r.prepared is None for r in recs] == ["rec4" in r.path for r in recs]  # not prepared
    assert all(r.prepared is None for r in plain)
    for rec in recs:
        whole, _ = load(rec.path, sample_rate=RATE)  # resampled as a whole
        start = rec.n_frames // 3
        window = data.read_window(rec, start, RATE, RATE)  # (RATE,), zero-padded at the end
        first = start * RATE // rec.sample_rate
        expected = np.zeros(RATE, dtype=np.float32)
        part = whole[first : first + RATE]
        expected[: len(part)] = part
        if rec.prepared is None:  # decoded as a span: its own resampling, same start
            assert np.any(window != 0) and window.shape == (RATE,)
        else:  # the stored samples: the whole-file resampling, 16-bit quantised
            np.testing.assert_allclose(window, expected, atol=0.5 / 32768, rtol=0)
    want = stream(recs).batch(3)["audio"]
    for rec in recs:  # the prepared recordings' own files are no longer read
        if rec.prepared is not None:
            os.remove(rec.path)
    got = stream(recs).batch(3)["audio"]
    assert torch.equal(got, want) and got.shape == (3, RATE // 2) and torch.all(got.std(1) > 0)
