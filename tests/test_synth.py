"""Synthetic soundscapes list exactly the calls placed, at the SNR asked, reproducibly."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from biomae.annotations import make_events, read_annotations, validate_events
from biomae.datasets.synth import (
    Snippet,
    SynthConfig,
    add_arguments,
    cut_snippets,
    read_event_csv,
    run,
    synthesize,
    write_soundscapes,
)

RATE = 8000


def tone_snippet(label: str, frequency_hz: float, n_samples: int, margin: int = 0) -> Snippet:
    """A tone call with ``margin`` silent samples each side (so its sound is exactly its event)."""
    t = np.arange(n_samples) / RATE
    call = (0.5 * np.sin(2 * np.pi * frequency_hz * t) * np.hanning(n_samples + 2)[1:-1]).astype(
        np.float32
    )
    audio = np.concatenate([np.zeros(margin, np.float32), call, np.zeros(margin, np.float32)])
    return Snippet(
        audio=audio,
        event_offset_s=margin / RATE,
        event_duration_s=n_samples / RATE,
        label=label,
        taxon=f"{label} taxon",
        low_hz=frequency_hz - 100,
        high_hz=frequency_hz + 100,
        origin=f"{label}.flac",
    )


SNIPPETS = [
    tone_snippet("a", 1000.0, 800),
    tone_snippet("b", 2500.0, 1200, margin=40),
    tone_snippet("c", 3200.0, 400),
]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), overlap=st.sampled_from([0.0, 0.5]))
def test_table_lists_exactly_the_calls_placed(seed, overlap):
    config = SynthConfig(duration_s=4.0, sample_rate=RATE, density_per_min=120, overlap=overlap)
    audio, events = synthesize(config, SNIPPETS, [], np.random.default_rng(seed))
    validate_events(events, sample_rate=RATE, duration_s=4.0)
    assert len(events) == events.attrs["synth"]["n_placed"]
    assert set(events["source"]) <= {"synth"} and (events["kept_fraction"] == 1).all()
    sounding = np.zeros(len(audio), dtype=bool)
    for _, row in events.iterrows():
        a, b = round(row["start_s"] * RATE), round(row["end_s"] * RATE)
        sounding[a:b] = True
        snippet = next(s for s in SNIPPETS if s.label == row["label"])
        assert row["taxon"] == snippet.taxon and row["low_hz"] == snippet.low_hz
        assert np.any(audio[a:b])
        if overlap == 0:  # re-cutting the span gives the snippet's call, scaled
            call = snippet.audio[round(snippet.event_offset_s * RATE) :][: b - a]
            assert np.corrcoef(audio[a:b], call)[0, 1] == pytest.approx(1.0, abs=1e-6)
    assert not np.any(audio[~sounding])  # silent background: sound only where a call is listed
    if overlap == 0:
        spans = events[["start_s", "end_s"]].to_numpy()
        assert np.all(spans[1:, 0] >= spans[:-1, 1] - 1e-12)  # no two calls overlap


def test_overlap_one_makes_every_later_call_overlap():
    config = SynthConfig(duration_s=10.0, sample_rate=RATE, density_per_min=60, overlap=1.0)
    _, events = synthesize(config, SNIPPETS, [], np.random.default_rng(5))
    spans = events[["start_s", "end_s"]].to_numpy()
    assert len(spans) >= 3
    for i, (a, b) in enumerate(spans):
        others = np.delete(spans, i, axis=0)
        assert np.any((others[:, 0] < b) & (others[:, 1] > a))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_calls_sit_at_the_requested_snr(seed):
    rng = np.random.default_rng(seed)
    background = (0.02 * rng.standard_normal(5 * RATE)).astype(np.float32)  # exactly one crop
    config = SynthConfig(
        duration_s=5.0, sample_rate=RATE, density_per_min=36, overlap=0.0, snr_db=(-5, 15),
    )  # fmt: skip
    audio, events = synthesize(config, SNIPPETS, [background], rng)
    for _, row in events.iterrows():
        a, b = math.floor(row["start_s"] * RATE), math.ceil(row["end_s"] * RATE)
        before = np.mean(background[a:b].astype(np.float64) ** 2)
        ratio = np.mean(audio[a:b].astype(np.float64) ** 2) / before
        expected = 10 * np.log10(1 + 10 ** (row["snr_db"] / 10))
        assert 10 * np.log10(ratio) == pytest.approx(expected, abs=0.6)


def test_background_is_one_crop_or_crossfaded_crops():
    config = SynthConfig(duration_s=5.0, sample_rate=RATE, density_per_min=0, crossfade_s=0.1)
    rng = np.random.default_rng(0)
    whole = rng.standard_normal(5 * RATE).astype(np.float32)
    audio, events = synthesize(config, SNIPPETS, [whole], rng)
    assert np.array_equal(audio, whole) and len(events) == 0
    short = rng.standard_normal(RATE).astype(np.float32)  # 1 s: five crops, 0.1-s crossfades
    audio, _ = synthesize(config, SNIPPETS, [short], rng)
    assert len(audio) == 5 * RATE
    frames = np.sqrt(np.mean(audio.reshape(-1, 400) ** 2, axis=1))  # (50 ms frames,) RMS
    assert frames.min() > 0.5  # equal-power crossfades leave no gap or dip
    assert np.array_equal(audio[: RATE - 800], short[: RATE - 800])


def test_synthesis_is_reproducible_from_the_seed():
    config = SynthConfig(duration_s=3.0, sample_rate=RATE, density_per_min=100)
    background = [np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32) * 0.01]
    first = synthesize(config, SNIPPETS, background, np.random.default_rng(11))
    second = synthesize(config, SNIPPETS, background, np.random.default_rng(11))
    other = synthesize(config, SNIPPETS, background, np.random.default_rng(12))
    assert np.array_equal(first[0], second[0]) and first[1].equals(second[1])
    assert not np.array_equal(first[0], other[0])


def test_label_weights_set_the_species_mix():
    config = SynthConfig(
        duration_s=20.0, sample_rate=RATE, density_per_min=60, overlap=0.5,
        label_weights={"a": 1.0, "b": 0.0, "c": 3.0},
    )  # fmt: skip
    _, events = synthesize(config, SNIPPETS, [], np.random.default_rng(0))
    counts = events["label"].value_counts()
    assert "b" not in counts and counts["c"] > counts["a"]
    with pytest.raises(ValueError, match="not among snippet labels"):
        synthesize(
            SynthConfig(sample_rate=RATE, label_weights={"zebra": 1.0}),
            SNIPPETS,
            [],
            np.random.default_rng(0),
        )


def test_cut_snippets_keeps_margins_clear_of_neighbours_and_counts_skips(tmp_path):
    audio = np.zeros(2 * RATE, np.float32)
    audio[800:1600] = 0.5  # event 1: 0.1-0.2 s
    audio[1640:2440] = -0.5  # event 2: 0.205-0.305 s, 5 ms after event 1 (the mean stays 0)
    soundfile.write(tmp_path / "rec.flac", audio, RATE)
    table = pd.DataFrame(
        {
            "recording": "rec.flac",
            "start_s": [0.1, 0.205, 1.0, 1.02, 1.5],
            "end_s": [0.2, 0.305, 1.1, 1.05, 1.6],
            "label": ["x", "y", "z", "z", "quiet"],
        }
    )
    table.to_csv(tmp_path / "events.csv", index=False)
    config = SynthConfig(sample_rate=RATE, margin_s=0.02, fade_s=0.0)
    snippets, skipped = cut_snippets(
        read_event_csv(tmp_path / "events.csv"), tmp_path, config, np.random.default_rng(0)
    )
    assert skipped == {"overlaps another event": 2, "silent": 1}
    x, y = sorted(snippets, key=lambda s: s.label)
    assert x.event_offset_s == pytest.approx(0.02) and len(x.audio) == 800 + 160 + 40
    assert y.event_offset_s == pytest.approx(0.005) and y.audio[0] == 0  # margin stops at x's end
    assert np.all(x.audio[160:960] == 0.5)


def test_real_calls_on_real_backgrounds(shared_data, tmp_path):
    """koumura_bird0 syllables (CC-BY) on scikit-maad soundscapes (BSD): files, tables, seed."""
    config = SynthConfig(
        duration_s=5.0, sample_rate=32000, density_per_min=60,
        events_path=str(shared_data / "index" / "events.csv"), audio_root=str(shared_data),
        backgrounds=(str(shared_data / "audio/scikit-maad/data/indices/*_00*.flac"),),
        sources=("koumura_bird0",), max_snippets=12, max_backgrounds=2,
    )  # fmt: skip
    manifests = [write_soundscapes(config, tmp_path / name, 2, seed=3) for name in ("a", "b")]
    info = json.loads(manifests[0].read_text())
    assert info["seed"] == 3 and sum(info["snippets_per_label"].values()) <= 12
    for entry in info["files"]:
        stem = entry["audio"].removesuffix(".flac")
        audio, rate = soundfile.read(tmp_path / "a" / entry["audio"], dtype="float32")
        assert rate == 32000 and len(audio) == 5 * 32000 and np.max(np.abs(audio)) <= 0.99 + 1e-6
        events = read_annotations(tmp_path / "a" / f"{stem}.csv", "csv")
        assert len(events) == entry["n_placed"]
        assert set(events["source"]) <= {"synth"}
        assert set(events["taxon"]) <= {"Lonchura striata domestica (Bengalese finch)"}
        validate_events(events, sample_rate=32000, duration_s=5.0)
        raven = read_annotations(tmp_path / "a" / f"{stem}.selections.txt", "raven")
        assert raven["start_s"].to_numpy() == pytest.approx(events["start_s"].to_numpy(), abs=1e-6)
        same = tmp_path / "b" / entry["audio"]
        assert np.array_equal(audio, soundfile.read(same, dtype="float32")[0])
        assert (tmp_path / "a" / f"{stem}.csv").read_text() == (
            tmp_path / "b" / f"{stem}.csv"
        ).read_text()


def test_snippets_feed_the_mix_augmentation():
    from biomae.augment import Mix, MixConfig

    pool = [snippet.as_pair() for snippet in SNIPPETS]
    assert pool[1][1][["start_s", "end_s"]].to_numpy().tolist() == [[40 / RATE, 1240 / RATE]]
    mixer = Mix(MixConfig(sample_rate=RATE, allow_partial=False), pool)
    audio, events = mixer(np.zeros(RATE, np.float32), make_events([]), np.random.default_rng(0))
    assert len(events) == 1 and events["label"].iloc[0] in {"a", "b", "c"}
    validate_events(events, duration_s=1.0)


def test_real_snippets_recut_from_a_silent_background(shared_data):
    config = SynthConfig(
        duration_s=6.0, sample_rate=32000, density_per_min=40, overlap=0.0,
        sources=("koumura_bird0",), max_snippets=10,
    )  # fmt: skip
    table = read_event_csv(shared_data / "index" / "events.csv")
    snippets, _ = cut_snippets(table, shared_data, config, np.random.default_rng(1))
    audio, events = synthesize(config, snippets, [], np.random.default_rng(2))
    assert len(events) > 0
    for _, row in events.iterrows():
        snippet = next(s for s in snippets if s.origin_start_s == row["origin_start_s"])
        onset = round((row["start_s"] - snippet.event_offset_s) * 32000)
        piece = audio[onset : onset + len(snippet.audio)]
        assert np.corrcoef(piece, snippet.audio)[0, 1] == pytest.approx(1.0, abs=1e-5)


def test_cli_writes_soundscapes(shared_data, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--events", str(shared_data / "index" / "events.csv"), "--audio-root", str(shared_data),
            "--sources", "bfsongrepo", "--max-snippets", "8", "--n", "1", "--duration-s", "3",
            "--sample-rate", "16000", "--snr-db", "0", "10", "--out", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    assert run(args) == 0
    assert "wrote 1 soundscapes" in capsys.readouterr().out
    assert soundfile.info(tmp_path / "out" / "soundscape_0000.flac").samplerate == 16000
    assert (tmp_path / "out" / "manifest.json").exists()


def test_cli_reads_a_catalog_and_reports_bad_input(tmp_path, capsys):
    audio = np.zeros(RATE, np.float32)
    audio[2000:3000] = np.sin(np.arange(1000) / 3, dtype=np.float32)
    soundfile.write(tmp_path / "rec.flac", audio, RATE)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    events = pd.DataFrame(
        {"recording": [str(tmp_path / "rec.flac")], "start_s": [0.25], "end_s": [0.375]}
    )
    make_events(events, label="tone", dataset="mine").to_parquet(catalog / "events.parquet")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    common = ["--n", "1", "--duration-s", "2", "--density-per-min", "150", "--seed", "1"]
    common += ["--sample-rate", str(RATE), "--out", str(tmp_path / "o")]
    assert run(parser.parse_args(["--catalog", str(catalog), "--sources", "mine", *common])) == 0
    table = read_annotations(tmp_path / "o" / "soundscape_0000.csv", "csv")
    assert (
        len(table) > 0
        and set(table["label"]) == {"tone"}
        and (table["end_s"] - table["start_s"]).tolist() == (pytest.approx([0.125] * len(table)))
    )
    assert run(parser.parse_args(["--events", str(tmp_path / "x.csv"), *common])) == 2
    assert "--events needs --audio-root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--events", "a.csv", "--catalog", "c", *common])


def test_config_fails_early():
    with pytest.raises(ValueError, match="overlap must lie"):
        SynthConfig(overlap=1.5)
    with pytest.raises(ValueError, match="snr_db low"):
        SynthConfig(snr_db=(10, 0))
    with pytest.raises(ValueError, match="no snippets"):
        synthesize(SynthConfig(), [], [], np.random.default_rng(0))
