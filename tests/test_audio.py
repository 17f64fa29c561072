"""Tests for biomae.audio: formats, rates, bad files, spans, resampling, streaming, saving."""

from __future__ import annotations

import csv
import tracemalloc

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from biomae import audio
from biomae.audio import AudioError


def sine(freq_hz: float, sample_rate: int, duration_s: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sample_rate)[np.argmax(spectrum)])


# ----------------------------------------------------------------------------- formats and rates

LOSSLESS = [
    ("a.wav", "PCM_U8", 2.0**-7),
    ("a.wav", "PCM_16", 2.0**-15),
    ("a.wav", "PCM_24", 2.0**-23),
    ("a.wav", "PCM_32", 2.0**-31),
    ("a.wav", "FLOAT", 1e-7),
    ("a.flac", "PCM_16", 2.0**-15),
    ("a.flac", "PCM_24", 2.0**-23),
    ("a.aiff", "PCM_16", 2.0**-15),
]


@pytest.mark.parametrize("name, subtype, step", LOSSLESS)
def test_lossless_formats_decode_to_the_written_values(tmp_path, name, subtype, step):
    x = sine(440.0, 16000, 0.5)
    soundfile.write(tmp_path / name, x, 16000, subtype=subtype)
    y, rate = audio.load(tmp_path / name)
    meta = audio.info(tmp_path / name)
    assert rate == 16000 and y.dtype == np.float32 and y.shape == x.shape
    assert (meta.n_samples, meta.channels, meta.subtype) == (len(x), 1, subtype)
    assert np.abs(y - x).max() <= step


@pytest.mark.parametrize(
    "name, fmt, subtype",
    [("a.ogg", "OGG", "VORBIS"), ("a.opus", "OGG", "OPUS"), ("a.mp3", "MP3", "MPEG_LAYER_III")],
)
def test_lossy_formats_keep_length_and_pitch(tmp_path, name, fmt, subtype):
    x = sine(1000.0, 48000, 1.0)
    soundfile.write(tmp_path / name, x, 48000, format=fmt, subtype=subtype)
    y, rate = audio.load(tmp_path / name)
    assert rate == 48000 and abs(len(y) - len(x)) <= 2048
    assert peak_hz(y, rate) == pytest.approx(1000.0, abs=2.0)
    rms = float(np.sqrt(np.mean(y[4800:-4800] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("sample_rate", [2000, 8000, 44100, 192000, 500000])
def test_sample_rates_from_2_khz_to_500_khz(tmp_path, sample_rate):
    x = sine(0.1 * sample_rate, sample_rate, 0.25)
    path = tmp_path / "a.wav"
    audio.save(path, x, sample_rate, subtype="PCM_16")
    y, rate = audio.load(path)
    assert rate == sample_rate and len(y) == len(x)
    assert peak_hz(y, rate) == pytest.approx(0.1 * sample_rate, rel=0.01)


def test_multichannel_pick_and_mixdown(tmp_path):
    x = np.stack([np.full(1000, 0.1), np.full(1000, 0.3), np.full(1000, -0.7)], axis=1)
    path = tmp_path / "three.wav"
    soundfile.write(path, x, 8000, subtype="FLOAT")
    assert audio.info(path).channels == 3
    for channel in range(3):
        y, _ = audio.load(path, channel=channel)
        np.testing.assert_allclose(y, x[:, channel], atol=1e-7)
    mixed, _ = audio.load(path)
    np.testing.assert_allclose(mixed, x.mean(axis=1), atol=1e-6)
    with pytest.raises(AudioError, match=r"three\.wav.*channel 3 out of range.*3 channel"):
        audio.load(path, channel=3)
    with pytest.raises(AudioError, match="channel -1"):
        next(audio.stream(path, block_s=0.01, channel=-1))


def test_span_reads_the_same_samples_as_a_slice(tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32)
    path = tmp_path / "a.flac"
    soundfile.write(path, x, 16000, subtype="PCM_24")
    full, _ = audio.load(path)
    part, _ = audio.load(path, start_s=1.25, duration_s=0.5)
    np.testing.assert_array_equal(part, full[20000:28000])
    tail, _ = audio.load(path, start_s=2.0)
    np.testing.assert_array_equal(tail, full[32000:])
    with pytest.raises(AudioError, match=r"a\.flac.*ends past the end"):
        audio.load(path, start_s=2.5, duration_s=1.0)
    with pytest.raises(AudioError, match="at or past the end"):
        audio.load(path, start_s=3.0)
    with pytest.raises(AudioError, match="start_s must be"):
        audio.load(path, start_s=-1.0)
    with pytest.raises(AudioError, match="duration_s must be"):
        audio.load(path, duration_s=0.0)


def test_resample_moves_no_frequency_and_keeps_channels():
    x = sine(1000.0, 48000, 1.0)
    y = audio.resample(x, 48000, 16000)
    assert y.dtype == np.float32 and len(y) == 16000
    assert peak_hz(y, 16000) == pytest.approx(1000.0, abs=1.0)
    up = audio.resample(x, 48000, 96000)
    assert len(up) == 96000 and peak_hz(up, 96000) == pytest.approx(1000.0, abs=1.0)
    stereo = audio.resample(np.stack([x, -x], axis=1), 48000, 22050)
    assert stereo.shape == (22050, 2)
    np.testing.assert_allclose(stereo[:, 0], -stereo[:, 1], atol=1e-6)
    with pytest.raises(ValueError, match="target_rate"):
        audio.resample(x, 48000, 0)


def test_load_resamples_to_the_requested_rate(tmp_path):
    path = tmp_path / "a.wav"
    audio.save(path, sine(3000.0, 44100, 1.0), 44100)
    y, rate = audio.load(path, sample_rate=16000)
    assert rate == 16000 and len(y) == 16000
    assert peak_hz(y, rate) == pytest.approx(3000.0, abs=1.0)
    with pytest.raises(AudioError, match=r"a\.wav.*positive integer"):
        audio.load(path, sample_rate=0)
    with pytest.raises(AudioError, match="positive integer"):
        audio.load(path, sample_rate=-16000)


# ----------------------------------------------------------------------------- bad files


def _wav_bytes(tmp_path) -> bytes:
    soundfile.write(tmp_path / "good.wav", sine(440.0, 8000, 1.0), 8000, subtype="PCM_16")
    return (tmp_path / "good.wav").read_bytes()


def test_missing_empty_header_only_and_garbage_files(tmp_path):
    with pytest.raises(AudioError, match=r"nothere\.wav: no such file"):
        audio.load(tmp_path / "nothere.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        audio.info(tmp_path / "empty.wav")
    (tmp_path / "header.wav").write_bytes(_wav_bytes(tmp_path)[:44])
    with pytest.raises(AudioError, match=r"header\.wav: contains no audio samples"):
        audio.load(tmp_path / "header.wav")
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (tmp_path / "garbage.wav").write_bytes(noise)
    with pytest.raises(AudioError, match=r"garbage\.wav: not a readable audio file"):
        audio.load(tmp_path / "garbage.wav")
    with pytest.raises(AudioError, match="is a directory"):
        audio.info(tmp_path)


def _stream_all(path) -> np.ndarray:
    return np.concatenate([b.audio for b in audio.stream(path, block_s=0.25)])


def test_truncated_wav_reads_its_readable_part_and_says_so(tmp_path):
    data = _wav_bytes(tmp_path)  # 1 s of 16-bit mono at 8 kHz: 44 header bytes + 16000
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 4001])  # the battery died mid-sample
    meta = audio.info(tmp_path / "cut.wav")
    assert meta.warning == "truncated: header says 1.0 s, 0.25 s readable"
    assert (meta.n_samples, meta.duration_s) == (2000, 0.25)
    whole, _ = audio.load(tmp_path / "good.wav")
    with pytest.warns(audio.TruncatedAudioWarning, match=r"cut\.wav: truncated: header says"):
        part, _ = audio.load(tmp_path / "cut.wav")
    np.testing.assert_array_equal(part, whole[:2000])
    with pytest.warns(audio.TruncatedAudioWarning):
        np.testing.assert_array_equal(_stream_all(tmp_path / "cut.wav"), part)
    assert audio.info(tmp_path / "good.wav").warning is None


def test_truncated_real_stereo_wav(shared_data, tmp_path):
    source = shared_data / "audio" / "birdnet_example" / "soundscape_10s_stereo.wav"
    data = source.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: int(len(data) * 0.6)])
    meta = audio.info(tmp_path / "cut.wav")
    assert meta.warning == f"truncated: header says 10.0 s, {meta.duration_s:.2f} s readable"
    assert 5.9 < meta.duration_s < 6.0
    with pytest.warns(audio.TruncatedAudioWarning):
        part, _ = audio.load(tmp_path / "cut.wav", channel=1)
    whole, _ = audio.load(source, channel=1)
    np.testing.assert_array_equal(part, whole[: meta.n_samples])


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.999])
def test_truncated_flac_reads_its_readable_part_and_says_so(tmp_path, fraction):
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 8000 * 20).astype(np.float32)
    soundfile.write(tmp_path / "good.flac", x, 8000)
    data = (tmp_path / "good.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: int(len(data) * fraction)])  # cut mid-frame
    meta = audio.info(tmp_path / "cut.flac")
    assert 0 < meta.n_samples < len(x)
    assert meta.warning == f"truncated: header says 20.0 s, {meta.n_samples / 8000:.2f} s readable"
    whole, _ = audio.load(tmp_path / "good.flac")
    with pytest.warns(audio.TruncatedAudioWarning, match=r"cut\.flac: truncated"):
        part, _ = audio.load(tmp_path / "cut.flac")
    np.testing.assert_array_equal(part, whole[: meta.n_samples])  # every readable sample
    with pytest.warns(audio.TruncatedAudioWarning):
        np.testing.assert_array_equal(_stream_all(tmp_path / "cut.flac"), part)
    with pytest.raises(AudioError, match="past the end"), pytest.warns(audio.TruncatedAudioWarning):
        audio.load(tmp_path / "cut.flac", start_s=meta.duration_s)
    assert audio.info(tmp_path / "good.flac").warning is None


def test_truncated_real_flac(shared_data, tmp_path):
    data = (shared_data / "audio" / "birdnet_example" / "soundscape.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 3])
    meta = audio.info(tmp_path / "cut.flac")
    assert meta.warning.startswith("truncated: header says 120.0 s, ")
    with pytest.warns(audio.TruncatedAudioWarning):
        part, rate = audio.load(tmp_path / "cut.flac", sample_rate=16000)
    assert len(part) == round(meta.n_samples * 16000 / meta.sample_rate)


@pytest.mark.parametrize(
    "name, head",
    [
        ("fake.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00"),
        ("fake.aac", b"\xff\xf1\x50\x80\x02\x1f\xfc"),
        ("fake.wma", bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")),
        ("mislabelled.wav", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00"),
    ],
)
def test_unsupported_containers_suggest_ffmpeg(tmp_path, name, head):
    (tmp_path / name).write_bytes(head + bytes(2000))
    with pytest.raises(AudioError, match=rf"{name}: .*cannot be read by libsndfile.*ffmpeg"):
        audio.load(tmp_path / name)


@pytest.mark.parametrize("name", ["soundscape.aac", "soundscape.m4a"])
def test_real_aac_and_m4a_suggest_ffmpeg(shared_data, name):
    with pytest.raises(AudioError, match=r"cannot be read by libsndfile.*ffmpeg"):
        audio.info(shared_data / "audio" / "birdnet_example" / name)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples_are_rejected(tmp_path, bad):
    x = np.zeros(200000, dtype=np.float32)
    x[123456] = bad
    soundfile.write(tmp_path / "bad.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"bad\.wav: non-finite sample .* at sample 123456"):
        audio.load(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match="at sample 123456"):
        list(audio.stream(tmp_path / "bad.wav", block_s=1.0))
    clean, _ = audio.load(tmp_path / "bad.wav", duration_s=1.0)  # before the bad sample
    assert np.all(clean == 0)


# ----------------------------------------------------------------------------- windows and streams


def test_window_starts_examples():
    np.testing.assert_array_equal(audio.window_starts(10, 4, 2), [0, 2, 4, 6])
    np.testing.assert_array_equal(audio.window_starts(11, 4, 2), [0, 2, 4, 6, 7])
    np.testing.assert_array_equal(audio.window_starts(3, 4, 2), [0])
    np.testing.assert_array_equal(audio.window_starts(4, 4, 4), [0])
    assert audio.window_starts(10, 4, 2).dtype == np.int64
    with pytest.raises(ValueError, match="hop_samples"):
        audio.window_starts(10, 4, 0)


@settings(deadline=None)
@given(
    n_samples=st.integers(0, 100_000),
    window=st.integers(1, 5000),
    hop=st.integers(1, 5000),
)
def test_window_starts_cover_the_recording(n_samples, window, hop):
    starts = audio.window_starts(n_samples, window, hop)
    assert starts[0] == 0 and starts[-1] == max(n_samples - window, 0)
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= hop)
    if hop <= window:  # no gaps
        assert np.all(starts[1:] <= starts[:-1] + window)


@settings(deadline=None)
@given(
    n_samples=st.integers(1, 3000),
    block=st.integers(1, 700),
    hop_fraction=st.floats(0.01, 1.0),
    chunk=st.integers(1, 900),
)
def test_blocks_are_exact_slices_whatever_the_chunking(n_samples, block, hop_fraction, chunk):
    hop = max(1, round(hop_fraction * block))
    x = np.arange(n_samples, dtype=np.float32)
    chunks = (x[i : i + chunk] for i in range(0, n_samples, chunk))
    blocks = list(audio._blocks(chunks, block, hop, 1000))
    expected_starts = list(range(0, max(n_samples - block, 0) + hop, hop))
    expected_starts = [s for s in expected_starts if s == 0 or s - hop + block < n_samples]
    assert [b.start_sample for b in blocks] == expected_starts
    for b in blocks:
        np.testing.assert_array_equal(b.audio, x[b.start_sample : b.start_sample + block])
    assert blocks[-1].end_sample == n_samples


@pytest.mark.parametrize("sample_rate", [None, 16000, 44100])
def test_stream_blocks_concatenate_to_load(tmp_path, sample_rate):
    x = np.random.default_rng(3).uniform(-0.5, 0.5, 200_001).astype(np.float32)  # > 3 chunks
    path = tmp_path / "a.flac"
    soundfile.write(path, np.stack([x, 0.5 * x], axis=1), 22050, subtype="PCM_24")
    whole, rate = audio.load(path, sample_rate=sample_rate, channel=1)
    blocks = list(audio.stream(path, block_s=1.0, hop_s=0.25, sample_rate=sample_rate, channel=1))
    block_n, hop_n = round(1.0 * rate), round(0.25 * rate)
    assert [b.start_sample for b in blocks] == list(range(0, hop_n * len(blocks), hop_n))
    assert all(len(b.audio) == block_n for b in blocks[:-1]) and len(blocks[-1].audio) <= block_n
    assert blocks[-1].end_sample == len(whole) and blocks[-2].end_sample < len(whole)
    assert all(b.sample_rate == rate and b.start_s == b.start_sample / rate for b in blocks)
    for block in blocks:  # every block is exactly the same span of the one-shot load
        np.testing.assert_array_equal(block.audio, whole[block.start_sample : block.end_sample])


def test_stream_stops_at_the_block_that_reaches_the_end(tmp_path):
    path = tmp_path / "a.wav"
    audio.save(path, np.zeros(1000, dtype=np.float32), 1000)
    blocks = list(audio.stream(path, block_s=0.4, hop_s=0.2))
    assert [(b.start_sample, len(b.audio)) for b in blocks] == [
        (0, 400),
        (200, 400),
        (400, 400),
        (600, 400),
    ]
    assert [len(b.audio) for b in audio.stream(path, block_s=0.3)] == [300, 300, 300, 100]
    assert [len(b.audio) for b in audio.stream(path, block_s=5.0)] == [1000]
    with pytest.raises(AudioError, match=r"hop_s must be in \(0, block_s=0.3\]"):
        audio.stream(path, block_s=0.3, hop_s=0.5)


@pytest.fixture(scope="session")
def two_hour_wav(tmp_path_factory):
    """2 h of low-amplitude noise at 4 kHz, PCM_16 WAV (28.8 M samples: 115 MB as float32)."""
    path = tmp_path_factory.mktemp("long") / "two_hours.wav"
    minute = (np.random.default_rng(4).normal(0, 300, 4000 * 60)).astype(np.int16)
    with soundfile.SoundFile(path, "w", 4000, 1, subtype="PCM_16") as handle:
        for _ in range(120):
            handle.write(minute)
    return path


def test_stream_two_hours_in_bounded_memory(two_hour_wav):
    meta = audio.info(two_hour_wav)
    assert meta.duration_s == 7200.0
    decoded_bytes = meta.n_samples * 4
    tracemalloc.start()
    try:
        next_start, total, n_blocks = 0, 0, 0
        for block in audio.stream(two_hour_wav, block_s=60.0):
            assert block.start_sample == next_start  # integer-exact, contiguous
            next_start += len(block.audio)
            total += float(np.abs(block.audio).sum())
            n_blocks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_blocks == 120 and next_start == meta.n_samples and total > 0
    assert peak < decoded_bytes / 20, f"peak {peak / 2**20:.1f} MiB"


# ----------------------------------------------------------------------------- save


def test_save_round_trip_and_atomicity(tmp_path):
    x = sine(440.0, 8000, 0.5)
    for name in ["a.wav", "a.flac", "a.ogg", "a.aiff"]:
        audio.save(tmp_path / name, x, 8000)
        y, rate = audio.load(tmp_path / name)
        assert rate == 8000 and abs(len(y) - len(x)) <= 1024
    audio.save(tmp_path / "f.wav", np.stack([x, x], axis=1), 8000, subtype="FLOAT")
    assert audio.info(tmp_path / "f.wav").subtype == "FLOAT"
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(AudioError, match=r"loud\.wav: peak amplitude 1.5 exceeds 1.0.*PCM_16"):
        audio.save(tmp_path / "loud.wav", 3 * x, 8000)
    audio.save(tmp_path / "loud.wav", 3 * x, 8000, subtype="FLOAT")  # float keeps it
    assert np.abs(audio.load(tmp_path / "loud.wav")[0]).max() == pytest.approx(1.5, abs=1e-3)
    with pytest.raises(AudioError, match=r"a\.xyz: cannot choose a format"):
        audio.save(tmp_path / "a.xyz", x, 8000)
    with pytest.raises(AudioError, match="non-finite"):
        audio.save(tmp_path / "nan.wav", np.full(10, np.nan), 8000)
    assert not (tmp_path / "nan.wav").exists() and not list(tmp_path.glob(".*.part"))


# ----------------------------------------------------------------------------- real recordings

REAL_RATES = [2000, 22050, 32000, 48000, 96000, 192000, 250000, 256000, 312500]


@pytest.fixture(scope="module")
def real_files(shared_data) -> dict[int, tuple]:
    """One indexed recording per sample rate in REAL_RATES: rate -> (path, duration_s, channels)."""
    chosen: dict[int, tuple] = {}
    with open(shared_data / "index" / "files.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rate = int(row["sr"])
            if rate in REAL_RATES and rate not in chosen:
                chosen[rate] = (
                    shared_data / row["file"],
                    float(row["duration_s"]),
                    int(row["channels"]),
                )
    return chosen


@pytest.mark.parametrize("rate", REAL_RATES)
def test_real_recordings_load_stream_and_resample(real_files, rate):
    if rate not in real_files:
        pytest.skip(f"no {rate} Hz recording indexed")
    path, duration_s, channels = real_files[rate]
    meta = audio.info(path)
    assert (meta.sample_rate, meta.channels) == (rate, channels)
    assert meta.duration_s == pytest.approx(duration_s, abs=1e-3)
    x, got_rate = audio.load(path)
    assert got_rate == rate and len(x) == meta.n_samples and np.isfinite(x).all()
    assert 0 < np.abs(x).max() <= 1.0
    streamed = np.concatenate([b.audio for b in audio.stream(path, block_s=0.5)])
    np.testing.assert_array_equal(streamed, x)
    y, _ = audio.load(path, sample_rate=16000)
    assert len(y) == round(meta.n_samples * 16000 / rate)


def test_real_birdnet_variants_decode_alike(shared_data):
    folder = shared_data / "audio" / "birdnet_example"
    reference, _ = audio.load(folder / "soundscape.flac", duration_s=10.0)
    expected = {  # minimum correlation with the FLAC, per encoding
        "soundscape.mp3": 0.999,
        "soundscape.ogg": 0.99,
        "soundscape.opus": 0.98,
        "soundscape_10s_24bit.wav": 0.9999,
        "soundscape_10s_float32.wav": 0.9999,
        "soundscape_10s_stereo.wav": 0.9999,
        "soundscape_10s_3ch.wav": 0.9999,
        "soundscape_10s_8bit.wav": 0.7,
        "soundscape_alaw.wav": 0.97,
        "soundscape_ulaw.wav": 0.97,
    }
    for name, minimum in expected.items():
        x, _ = audio.load(folder / name, duration_s=10.0, sample_rate=48000)
        assert len(x) == len(reference), name
        assert np.corrcoef(x, reference)[0, 1] > minimum, name


@pytest.mark.parametrize(
    ("suffix", "container"), [(".caf", "CAF"), (".au", "AU"), (".AIFC", "AIFF")]
)
def test_every_folder_search_finds_what_audio_reads(tmp_path, suffix, container):
    """The suffix list is defined once (audio.AUDIO_SUFFIXES): annotate's folder search, the
    dataset registry and evaluate's pairing all know a recording that audio.load reads."""
    from biomae.annotate import find_recordings
    from biomae.datasets.registry import audio_files
    from biomae.evaluate.tables import recording_key

    path = tmp_path / "rec" / f"night{suffix}"
    path.parent.mkdir()
    soundfile.write(path, np.zeros(800, np.float32), 8000, format=container)
    assert len(audio.load(path)[0]) == 800
    assert [r.path for r in find_recordings([path.parent])] == [path]
    assert audio_files(tmp_path) == [path]
    assert recording_key(f"dir/night{suffix}") == recording_key("night.BirdNET.selection.table.txt")
