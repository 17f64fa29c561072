"""Augmentations keep annotations exact: events follow the audio, SNRs are what was asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomae.annotations.schema import make_events, validate_events
from biomae.augment import (
    AddNoise,
    AmplitudeEnvelope,
    Compose,
    EnvelopeConfig,
    GainConfig,
    Mix,
    MixConfig,
    NFFTJitter,
    NoiseConfig,
    NoiseReduction,
    NoiseReductionConfig,
    RandomApply,
    RandomGain,
    SpecAugmentConfig,
    TimeShift,
    TimeShiftConfig,
    add_noise,
    apply_envelope,
    choose_n_fft,
    colored_noise,
    ensure_columns,
    long_call,
    make_bout,
    mix,
    mixup,
    mixup_batch,
    reduce_noise,
    spec_augment,
    stitch,
    time_shift,
)
from biomae.augment.noise import istft, stft

RATE = 8000
FAST = settings(max_examples=15, deadline=None)


def tone(n_samples: int, frequency_hz: float, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * frequency_hz * np.arange(n_samples) / RATE)).astype(
        np.float32
    )


def sample_events(spans: list[tuple[int, int]]) -> pd.DataFrame:
    """Events on the sample grid, ``individual`` holding the row's id (to follow it)."""
    return make_events(
        {
            "start_s": [a / RATE for a, _ in spans],
            "end_s": [b / RATE for _, b in spans],
            "label": "call",
            "individual": [str(i) for i in range(len(spans))],
        }
    )


def span_audio(n_samples: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 inside the spans, 0 elsewhere: where the events are is where the sound is."""
    audio = np.zeros(n_samples, dtype=np.float32)
    for a, b in spans:
        audio[a:b] = 1.0
    return audio


def events_mask(events: pd.DataFrame, n_samples: int) -> np.ndarray:
    mask = np.zeros(n_samples, dtype=bool)
    for start_s, end_s in zip(events["start_s"], events["end_s"], strict=True):
        mask[round(start_s * RATE) : round(end_s * RATE)] = True
    return mask


@st.composite
def spans_in(draw, n_samples: int = 4000, max_events: int = 5) -> list[tuple[int, int]]:
    """Non-overlapping sample spans inside ``n_samples``."""
    cuts = sorted(draw(st.sets(st.integers(0, n_samples), min_size=2, max_size=2 * max_events)))
    pairs = list(zip(cuts[0::2], cuts[1::2], strict=False))
    return [(a, b) for a, b in pairs if b > a] or [(10, 20)]


@FAST
@given(spans=spans_in(), shift=st.integers(-5000, 5000), mode=st.sampled_from(["circular", "pad"]))
def test_time_shift_events_follow_the_audio(spans, shift, mode):
    n_samples = 4000
    audio, events = time_shift(
        span_audio(n_samples, spans), sample_events(spans), shift, RATE, mode
    )
    validate_events(events, duration_s=n_samples / RATE)
    assert np.array_equal(audio > 0, events_mask(events, n_samples))
    before = sample_events(spans)
    duration = (before["end_s"] - before["start_s"]).to_numpy()
    kept = events.groupby("individual")["kept_fraction"].sum()
    lengths = (events["end_s"] - events["start_s"]).groupby(events["individual"]).sum()
    for ident, fraction in kept.items():
        original = duration[int(ident)]
        assert lengths[ident] == pytest.approx(fraction * original, abs=1e-9)
        if mode == "circular":
            assert fraction == pytest.approx(1.0)  # a wrapped event is split, never lost
    if mode == "circular":
        assert np.array_equal(audio, np.roll(span_audio(n_samples, spans), shift))
        assert set(kept.index) == set(before["individual"])


def test_time_shift_circular_splits_a_wrapped_event():
    events = sample_events([(3500, 3900)])
    _, out = time_shift(np.zeros(4000, np.float32), events, 300, RATE, "circular")
    out = out.sort_values("start_s")
    expected = [[0.0, 200 / RATE], [3800 / RATE, 0.5]]
    assert out[["start_s", "end_s"]].to_numpy() == pytest.approx(np.array(expected), abs=1e-12)
    assert out["kept_fraction"].tolist() == pytest.approx([0.5, 0.5])


@FAST
@given(
    snr_db=st.floats(-10, 20),
    offset=st.integers(0, 6000),
    call=st.tuples(st.integers(0, 500), st.integers(800, 1500)),
)
def test_mix_raises_event_power_by_the_requested_snr(snr_db, offset, call):
    background = tone(8000, 440.0, 0.1)
    snippet = tone(2000, 1750.0, 0.3)
    snippet_events = sample_events([call])
    out, events, gain = mix(
        background, make_events([]), snippet, snippet_events,
        snr_db=snr_db, offset_samples=offset, sample_rate=RATE,
    )  # fmt: skip
    a, b = offset + call[0], offset + call[1]
    ratio = np.mean(out[a:b].astype(np.float64) ** 2) / np.mean(
        background[a:b].astype(np.float64) ** 2
    )
    assert 10 * np.log10(ratio) == pytest.approx(10 * np.log10(1 + 10 ** (snr_db / 10)), abs=0.3)
    assert events[["start_s", "end_s"]].to_numpy() == pytest.approx(
        np.array([[a, b]]) / RATE, abs=1e-12
    )
    assert np.array_equal(out[:offset], background[:offset])  # nothing added before the snippet


@FAST
@given(offset=st.integers(-2500, 8500), spans=spans_in(2000, 3))
def test_mix_clips_the_snippet_and_its_events_at_the_edges(offset, spans):
    n_samples = 6000
    background_events = sample_events([(100, 200)]).assign(label="bg")
    out, events, _ = mix(
        np.zeros(n_samples, np.float32), background_events, span_audio(2000, spans),
        sample_events(spans), snr_db=0.0, offset_samples=offset, sample_rate=RATE,
    )  # fmt: skip
    validate_events(events, duration_s=n_samples / RATE)
    assert events.iloc[0][["start_s", "end_s", "label"]].tolist() == [100 / RATE, 200 / RATE, "bg"]
    added = events[events["label"] == "call"]
    assert np.array_equal(out > 0, events_mask(added, n_samples))
    for _, row in added.iterrows():
        a, b = spans[int(row["individual"])]
        visible = min(b + offset, n_samples) - max(a + offset, 0)
        assert row["kept_fraction"] == pytest.approx(visible / (b - a))


def test_mix_transform_is_reproducible_and_keeps_both_tables():
    pool = [(tone(1000, 2000.0), sample_events([(100, 900)]))]
    transform = Mix(MixConfig(sample_rate=RATE, snr_db=(0, 10), allow_partial=False), pool)
    own = sample_events([(10, 50)]).assign(label="own")
    first = transform(tone(8000, 300.0, 0.1), own, np.random.default_rng(3))
    second = transform(tone(8000, 300.0, 0.1), own, np.random.default_rng(3))
    assert np.array_equal(first[0], second[0]) and first[1].equals(second[1])
    assert sorted(first[1]["label"]) == ["call", "own"]
    with pytest.raises(ValueError, match="does not fit"):
        transform(tone(500, 300.0), own, np.random.default_rng(0))


@FAST
@given(
    lengths=st.lists(st.integers(330, 1500), min_size=1, max_size=5),
    crossfade_s=st.floats(0, 0.02),
    event_start=st.integers(0, 150),
)
def test_stitch_total_length_and_shifted_events(lengths, crossfade_s, event_start):
    segments = [
        (tone(n, 500.0 + 100 * k), sample_events([(event_start, event_start + 40)]))
        for k, n in enumerate(lengths)
    ]
    audio, events = stitch(segments, crossfade_s, RATE)
    n_cross = round(crossfade_s * RATE)
    assert len(audio) == sum(lengths) - (len(lengths) - 1) * n_cross
    starts = np.concatenate([[0], np.cumsum(np.asarray(lengths[:-1]) - n_cross)])
    assert events["start_s"].to_numpy() == pytest.approx((starts + event_start) / RATE, abs=1e-12)
    validate_events(events, duration_s=len(audio) / RATE)


def test_stitch_crossfade_is_equal_power():
    ones, zeros, empty = np.ones(400, np.float32), np.zeros(400, np.float32), make_events([])
    fade_out, _ = stitch([(ones, empty), (zeros, empty)], 0.01, RATE)
    fade_in, _ = stitch([(zeros, empty), (ones, empty)], 0.01, RATE)
    overlap = slice(400 - 80, 400)
    assert fade_out[overlap] ** 2 + fade_in[overlap] ** 2 == pytest.approx(np.ones(80), abs=1e-6)
    with pytest.raises(ValueError, match="segment 1 has 100 samples"):
        stitch([(ones, empty), (ones[:100], empty), (ones, empty)], 0.01, RATE)


def test_make_bout_and_long_call():
    call, call_events = tone(400, 1000.0), sample_events([(50, 350)])
    audio, events = make_bout(call, call_events, 5, (0.01, 0.05), RATE, np.random.default_rng(0))
    starts = np.round(events["start_s"].to_numpy() * RATE).astype(int) - 50
    gaps = np.diff(starts) - 400
    assert len(events) == 5 and np.all((gaps >= 80) & (gaps <= 400))
    assert len(audio) == starts[-1] + 400
    audio, events = long_call(call, call_events, 4, 0.005, RATE)
    assert len(audio) == 4 * 400 - 3 * 40
    expected = np.array([[50, 3 * 360 + 350]]) / RATE
    assert events[["start_s", "end_s"]].to_numpy() == pytest.approx(expected, abs=1e-12)


@FAST
@given(start_db=st.floats(-40, 10), end_db=st.floats(-40, 10))
def test_db_ramp_envelope_and_audibility(start_db, end_db):
    n_samples = 8000
    spans = [(0, 400), (3800, 4200), (7600, 8000)]
    config = EnvelopeConfig(sample_rate=RATE, audibility_floor_db=-20.0)
    audio, events = apply_envelope(
        np.ones(n_samples, np.float32), sample_events(spans), config, start=start_db, end=end_db
    )
    expected_db = start_db + (end_db - start_db) * np.arange(n_samples) / (n_samples - 1)
    assert 20 * np.log10(audio) == pytest.approx(expected_db, abs=1e-3)
    for (a, b), audible in zip(spans, events["audible"], strict=True):
        level_db = 10 * np.log10(np.mean(10 ** (expected_db[a:b] / 10)))
        if abs(level_db + 20) > 0.1:
            assert audible == (level_db >= -20)


def test_spherical_envelope_and_absorption():
    n_samples = 16000
    config = EnvelopeConfig(sample_rate=RATE, mode="spherical", reference_m=10.0)
    audio, _ = apply_envelope(
        np.ones(n_samples, np.float32), make_events([]), config, start=10, end=40
    )
    assert audio[0] == pytest.approx(1.0) and audio[-1] == pytest.approx(0.25)
    config = EnvelopeConfig(
        sample_rate=RATE, mode="spherical", absorption=True, db_per_m_at_1khz=0.05, reference_m=10.0
    )
    events = make_events(
        {"start_s": [1.5, 1.5], "end_s": [2.0, 2.0], "low_hz": [200, 3000], "high_hz": [400, 3600]}
    )
    signal = tone(n_samples, 300.0, 0.3) + tone(n_samples, 3300.0, 0.3)
    audio, out = apply_envelope(signal, events, config, start=10.0, end=100.0)
    end = slice(14000, 16000)
    low = np.abs(np.fft.rfft(audio[end]))[300 * 2000 // RATE]
    high = np.abs(np.fft.rfft(audio[end]))[3300 * 2000 // RATE]
    alpha_3300 = 0.05 * 3.3**1.5  # dB/m
    assert 20 * np.log10(high / low) == pytest.approx(-alpha_3300 * 87, abs=3)  # ~90 m beyond ref
    assert out["audible"].tolist() == [True, False]  # the treble call fell below -30 dB


@pytest.mark.parametrize(("color", "slope"), [("white", 0), ("pink", -1), ("brown", -2)])
def test_colored_noise_has_the_exact_power_slope(color, slope):
    rng = np.random.default_rng(0)
    noise = colored_noise(2**16, color, rng)
    assert np.mean(noise.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-4)
    frames = noise.reshape(64, 1024)  # (frames, samples): an averaged periodogram
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(1024), axis=1)) ** 2, axis=0)
    bins = np.arange(8, 400)
    fitted = np.polyfit(np.log10(bins), np.log10(power[bins]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.15)


@FAST
@given(snr_db=st.floats(-20, 40), color=st.sampled_from(["white", "pink", "brown"]))
def test_add_noise_sets_the_snr_exactly(snr_db, color):
    signal = tone(4000, 700.0)
    noise = colored_noise(4000, color, np.random.default_rng(1))
    added = add_noise(signal, noise, snr_db) - signal
    measured = 10 * np.log10(
        np.mean(signal.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2)
    )
    assert measured == pytest.approx(snr_db, abs=1e-3)


def test_add_noise_transform_background_and_bank():
    background = tone(3000, 123.0, 0.2)
    events = sample_events([(5, 10)])
    noisy, out = AddNoise(NoiseConfig(colors=("background",), snr_db=(10, 10)), [background])(
        tone(8000, 1000.0), events, np.random.default_rng(0)
    )
    assert out is events
    assert 10 * np.log10(
        np.mean(tone(8000, 1000.0) ** 2) / np.mean((noisy - tone(8000, 1000.0)) ** 2)
    ) == (pytest.approx(10, abs=0.01))
    runs = []
    for _ in range(2):  # a noise bank is drawn from the first call's rng: reproducible per seed
        banked = AddNoise(NoiseConfig(colors=("pink",), bank_samples=20000))
        rng = np.random.default_rng(0)
        runs.append([banked(np.zeros(8000, np.float32), events, rng)[0] for _ in range(3)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    assert not np.array_equal(runs[0][1], runs[0][2]) and np.any(runs[0][0])
    with pytest.raises(ValueError, match="needs at least one background"):
        AddNoise(NoiseConfig(colors=("background",)))
    with pytest.raises(ValueError, match="shorter than the audio"):
        AddNoise(NoiseConfig(bank_samples=100))(tone(8000, 1.0), events, np.random.default_rng(0))


@FAST
@given(
    n_samples=st.integers(1, 5000), n_fft=st.sampled_from([16, 256, 512]), seed=st.integers(0, 9)
)
def test_stft_round_trip_is_exact(n_samples, n_fft, seed):
    audio = np.random.default_rng(seed).standard_normal(n_samples).astype(np.float32)
    spec = stft(audio, n_fft, n_fft // 4)
    assert spec.shape == (n_fft // 2 + 1, n_samples // (n_fft // 4) + 1)
    assert istft(spec, n_fft, n_fft // 4, n_samples) == pytest.approx(audio, abs=1e-5)


@pytest.mark.parametrize("block_s", [60.0, 1.3])  # one block; four overlapping blocks
def test_reduce_noise_lowers_stationary_noise_and_keeps_the_tone(block_s):
    n_samples = 4 * RATE
    rng = np.random.default_rng(0)
    calls = np.zeros(n_samples, dtype=np.float32)
    for start_s in (0.5, 1.75, 3.0):  # three 0.5-s calls: a tone that is not always there
        calls[round(start_s * RATE) : round((start_s + 0.5) * RATE)] = 1
    clean = tone(n_samples, 1000.0, 0.3) * calls
    noise = (0.05 * rng.standard_normal(n_samples)).astype(np.float32)
    out = reduce_noise(clean + noise, RATE, NoiseReductionConfig(n_fft=512, block_s=block_s))
    assert out.shape == clean.shape
    spectrum_in = np.abs(np.fft.rfft(clean + noise)) ** 2
    spectrum_out = np.abs(np.fft.rfft(out)) ** 2
    frequency_hz = np.fft.rfftfreq(n_samples, 1 / RATE)
    near = np.abs(frequency_hz - 1000) < 20
    far = np.abs(frequency_hz - 1000) > 200
    assert 10 * np.log10(spectrum_in[far].sum() / spectrum_out[far].sum()) > 10  # noise down 10 dB
    assert 10 * np.log10(spectrum_in[near].sum() / spectrum_out[near].sum()) == pytest.approx(
        0, abs=1.5
    )
    augmented, events = NoiseReduction(RATE)(clean + noise, sample_events([(1, 2)]), rng)
    assert events["start_s"].tolist() == [1 / RATE] and augmented.shape == clean.shape
    with pytest.raises(ValueError, match="shorter than n_fft"):
        reduce_noise(clean[:100], RATE)


def test_spec_augment_masks_bands_reproducibly():
    torch = pytest.importorskip("torch")
    spec = torch.arange(2 * 32 * 50, dtype=torch.float32).reshape(2, 32, 50) + 1  # (B, F, T)
    config = SpecAugmentConfig(
        n_time_masks=1, max_time_frames=10, n_freq_masks=1, max_freq_bins=5, fill="zero"
    )
    out = spec_augment(spec, config, np.random.default_rng(0))
    again = spec_augment(spec, config, np.random.default_rng(0))
    assert torch.equal(out, again) and out.shape == spec.shape
    for example in range(2):
        masked = out[example] == 0  # (F, T)
        full_rows = int(masked.all(dim=1).sum())  # masked frequency bins
        full_cols = int(masked.all(dim=0).sum())  # masked frames
        assert full_rows <= 5 and full_cols <= 10
        assert int(masked.sum()) == full_rows * 50 + full_cols * 32 - full_rows * full_cols
        assert torch.equal(out[example][~masked], spec[example][~masked])


def test_mixup_mixes_audio_and_labels():
    rng = np.random.default_rng(0)
    a, b = tone(100, 300.0), tone(100, 700.0)
    labels_a, labels_b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    audio, labels, lam = mixup(a, labels_a, b, labels_b, rng)
    assert 0 <= lam <= 1 and audio == pytest.approx(lam * a + (1 - lam) * b, abs=1e-6)
    assert labels.tolist() == pytest.approx([lam, 1 - lam, 0])
    _, union, _ = mixup(a, labels_a, b, labels_b, rng, labels="union")
    assert union.tolist() == [1, 1, 0]
    torch = pytest.importorskip("torch")
    waveforms, targets = torch.randn(4, 100), torch.eye(4)  # (B, n_samples), (B, n_classes)
    mixed, mixed_targets = mixup_batch(waveforms, targets, rng)
    assert mixed.shape == waveforms.shape and mixed_targets.sum(dim=1) == pytest.approx([1.0] * 4)


def test_choose_n_fft_draws_from_the_choices():
    rng = np.random.default_rng(0)
    drawn = {choose_n_fft(rng, (256, 512, 1024)) for _ in range(100)}
    assert drawn == {256, 512, 1024}
    assert NFFTJitter((400,))(rng) == 400
    with pytest.raises(ValueError, match="choices"):
        NFFTJitter((0,))


def test_n_fft_jitter_keeps_the_mel_patch_grid():
    torch = pytest.importorskip("torch")
    features = pytest.importorskip("biomae.features")
    front_end = features.Spectrogram(features.SpectrogramConfig(sample_rate=RATE, n_mels=32))
    waveform = torch.from_numpy(np.stack([tone(RATE, 1000.0), tone(RATE, 2000.0)]))  # (B, T)
    rng = np.random.default_rng(0)
    shapes = {
        tuple(front_end(waveform, n_fft=NFFTJitter((128, 256, 512))(rng)).shape) for _ in range(6)
    }
    assert shapes == {(2, 32, RATE // 80 + 1)}


def test_pipeline_is_reproducible_from_the_seed():
    pipeline = Compose(
        [
            Mix(MixConfig(sample_rate=RATE), [(tone(800, 2500.0), sample_events([(100, 700)]))]),
            RandomApply(AddNoise(NoiseConfig()), p=0.5),
            AmplitudeEnvelope(EnvelopeConfig(sample_rate=RATE)),
            TimeShift(TimeShiftConfig(sample_rate=RATE, max_shift_s=0.5)),
            RandomGain(GainConfig(-6, 6)),
        ]
    )
    audio, events = tone(16000, 440.0, 0.1), sample_events([(1000, 3000)])
    runs = [pipeline(audio, events, np.random.default_rng(seed)) for seed in (7, 7, 8)]
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1].equals(runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])
    assert np.array_equal(audio, tone(16000, 440.0, 0.1))  # input left untouched
    assert events.equals(sample_events([(1000, 3000)]))
    validate_events(runs[0][1], duration_s=2.0)
    identity = RandomApply(RandomGain(GainConfig(-6, -6)), p=0.0)
    assert identity(audio, events, np.random.default_rng(0))[0] is audio


def test_configs_fail_early():
    with pytest.raises(ValueError, match="mode"):
        TimeShiftConfig(sample_rate=RATE, mode="reflect")
    with pytest.raises(ValueError, match="absorption needs mode='spherical'"):
        EnvelopeConfig(sample_rate=RATE, absorption=True)
    with pytest.raises(ValueError, match="snr_db low"):
        MixConfig(sample_rate=RATE, snr_db=(10, 0))
    with pytest.raises(ValueError, match="p must lie"):
        RandomApply(RandomGain(GainConfig()), p=2)
    with pytest.raises(ValueError, match="silent"):
        mix(tone(100, 50.0), make_events([]), np.repeat(np.float32([0, 1]), 10),
            sample_events([(0, 10)]), snr_db=0, offset_samples=0, sample_rate=RATE)  # fmt: skip
    assert list(ensure_columns(make_events([]))[["kept_fraction", "audible"]].columns)
