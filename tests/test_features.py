"""Tests for biomae.features: against librosa, frame timing, n_fft per call, PCEN, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

librosa = pytest.importorskip("librosa")

from biomae.features import (  # noqa: E402
    FrontEnd,
    FrontEndConfig,
    Spectrogram,
    SpectrogramConfig,
)
from biomae.spectral import mel_filterbank, pcen_smoothing_coefficient  # noqa: E402


def noise(n_samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n_samples)).astype(np.float32)


def tone(freq_hz: float, sample_rate: int, duration_s: float) -> np.ndarray:
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.mark.parametrize(
    "sample_rate, n_fft, n_mels, fmin_hz, fmax_hz",
    [
        (22050, 512, 128, 0.0, None),
        (32000, 1024, 64, 50.0, 12000.0),
        (48000, 2048, 96, 500.0, 20000.0),
        (256000, 512, 64, 15000.0, None),
    ],
)
def test_mel_filterbank_matches_librosa(sample_rate, n_fft, n_mels, fmin_hz, fmax_hz):
    ours = mel_filterbank(sample_rate, n_fft, n_mels, fmin_hz, fmax_hz or sample_rate / 2)
    theirs = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin_hz, fmax=fmax_hz, dtype=np.float64
    )
    assert ours.shape == theirs.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6, atol=1e-12)
    config = SpectrogramConfig(
        sample_rate, n_fft=n_fft, n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz
    )
    centres = librosa.mel_frequencies(n_mels + 2, fmin=fmin_hz, fmax=fmax_hz or sample_rate / 2)
    np.testing.assert_allclose(Spectrogram(config).frequencies_hz(), centres[1:-1], rtol=1e-9)


@pytest.mark.parametrize("n_fft", [256, 512, 1024])
def test_log_mel_db_matches_librosa(n_fft):
    y = noise(22050) + tone(3000.0, 22050, 1.0)
    config = SpectrogramConfig(22050, n_fft=512, hop_s=0.01, n_mels=64, top_db=80.0)
    ours = Spectrogram(config)(torch.from_numpy(y), n_fft=n_fft)[0].numpy()
    power = librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=n_fft, hop_length=config.hop_samples, n_mels=64, pad_mode="constant"
    )
    np.testing.assert_allclose(ours, librosa.power_to_db(power, top_db=80.0), atol=2e-3)
    log = Spectrogram(SpectrogramConfig(22050, n_mels=64, compression="log"))(
        torch.from_numpy(y), n_fft=n_fft
    )
    np.testing.assert_allclose(log[0].numpy(), np.log(np.maximum(power, 1e-10)), atol=5e-4)


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman"])
def test_linear_power_matches_librosa_stft(window):
    y = noise(8000, seed=1)
    config = SpectrogramConfig(
        8000, n_fft=256, hop_s=0.005, window=window, scale="linear", compression="log"
    )
    ours = Spectrogram(config)(torch.from_numpy(y))[0].numpy()
    stft = librosa.stft(
        y, n_fft=256, hop_length=40, window=window, center=True, pad_mode="constant"
    )
    np.testing.assert_allclose(ours, np.log(np.maximum(np.abs(stft) ** 2, 1e-10)), atol=1e-3)
    assert ours.shape == (129, 201)


def test_linear_band_keeps_the_bins_inside():
    config = SpectrogramConfig(16000, n_fft=512, scale="linear", fmin_hz=1000.0, fmax_hz=4000.0)
    module = Spectrogram(config)
    freqs = module.frequencies_hz()
    np.testing.assert_allclose(freqs, np.arange(32, 129) * 31.25)  # 1000 .. 4000 Hz inclusive
    full = Spectrogram(SpectrogramConfig(16000, n_fft=512, scale="linear"))
    y = torch.from_numpy(noise(16000))
    torch.testing.assert_close(module(y), full(y)[:, 32:129])
    assert module(y, n_fft=1024).shape[1] == len(module.frequencies_hz(1024)) == 193


@pytest.mark.parametrize("click_sample", [0, 4000, 8000, 15840])
def test_frame_centres_map_to_time(click_sample):
    sample_rate = 16000
    y = np.zeros(sample_rate, dtype=np.float32)
    y[click_sample] = 1.0
    module = Spectrogram(SpectrogramConfig(sample_rate, n_fft=512, hop_s=0.01, scale="linear"))
    spec = module(torch.from_numpy(y))[0]  # (F, n_frames), dB
    frame = int(spec.mean(dim=0).argmax())
    assert module.n_frames(len(y)) == spec.shape[1] == 101
    assert module.frame_times_s(spec.shape[1])[frame] == pytest.approx(click_sample / sample_rate)


@pytest.mark.filterwarnings("ignore:Spectrogram. 2 of 64 mel filters are empty at n_fft=256")
def test_n_fft_per_call_keeps_the_mel_shape():
    config = SpectrogramConfig(32000, n_fft=512, hop_s=0.01, n_mels=64)
    module = Spectrogram(config)
    batch = torch.from_numpy(np.stack([noise(32000 * 2, seed) for seed in range(3)]))  # (3, T)
    shapes = {module(batch, n_fft=n_fft).shape for n_fft in (256, 512, 1024, 2048)}
    assert shapes == {(3, 64, module.n_frames(64000))}
    assert module.n_frames(64000) == 201
    assert {"window_256", "window_1024", "mel_2048"} <= {name for name, _ in module.named_buffers()}
    assert module.state_dict() == {}  # caches are not saved in checkpoints
    with pytest.raises(ValueError, match="n_fft must be an even integer >= 16, got 511"):
        module(batch, n_fft=511)
    with pytest.warns(UserWarning, match="mel filters are empty at n_fft=64"):
        module(batch, n_fft=64)


def test_ultrasonic_band_places_a_40_khz_call():
    config = SpectrogramConfig(256000, n_fft=512, hop_s=0.001, n_mels=64, fmin_hz=15000.0)
    module = Spectrogram(config)
    freqs = module.frequencies_hz()
    assert 15000 < freqs[0] < freqs[-1] < 128000 and np.all(np.diff(freqs) > 0)
    spec = module(torch.from_numpy(tone(40000.0, 256000, 0.05)))[0]  # (64, 51)
    assert spec.shape == (64, 51)
    peak_hz = freqs[int(spec[:, 10:-10].mean(dim=1).argmax())]
    assert peak_hz == pytest.approx(40000.0, rel=0.03)


def test_pcen_matches_librosa():
    y = noise(16000 * 3, seed=2) * np.linspace(0.1, 2.0, 48000, dtype=np.float32)
    config = SpectrogramConfig(16000, n_fft=512, hop_s=0.01, n_mels=40, compression="pcen")
    ours = Spectrogram(config)(torch.from_numpy(y))[0].numpy().astype(np.float64)
    magnitude = (
        librosa.feature.melspectrogram(
            y=y, sr=16000, n_fft=512, hop_length=160, n_mels=40, pad_mode="constant", power=1.0
        )
        * 2.0**31
    )
    b = pcen_smoothing_coefficient(0.4, 16000, 160)
    same_start = librosa.pcen(magnitude, sr=16000, hop_length=160, zi=(1 - b) * magnitude[:, :1])
    np.testing.assert_allclose(ours, same_start, rtol=2e-3, atol=1e-3)
    default = librosa.pcen(magnitude, sr=16000, hop_length=160)  # starts from M[-1] = 1
    settled = 200  # frames = 2 s = 5 time constants
    np.testing.assert_allclose(ours[:, settled:], default[:, settled:], rtol=0.02, atol=0.01)
    assert not np.allclose(ours[:, :5], default[:, :5], rtol=0.02)  # the documented difference


def test_batch_equals_single_and_1d_input():
    module = Spectrogram(SpectrogramConfig(22050, n_mels=32))
    batch = torch.from_numpy(np.stack([noise(11025, seed) for seed in range(3)]))  # (3, T)
    out = module(batch)
    assert out.dtype == torch.float32 and out.shape == (3, 32, 51)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], module(batch[i]), atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match=r"float \(B, T\)"):
        module(batch[None])


def test_bf16_autocast_computes_in_float32():
    module = Spectrogram(SpectrogramConfig(16000, n_mels=64))
    y = torch.from_numpy(noise(16000))
    reference = module(y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = module(y.bfloat16())
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, module(y.bfloat16().float()))  # only the input rounding
    assert (inside - reference).abs().max() < 0.5  # dB
    module.double()
    assert module(y).dtype == torch.float32


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fmax_hz": 9000.0}, "fmax_hz=9000.0 exceeds the Nyquist frequency 8000.0"),
        ({"fmin_hz": 5000.0, "fmax_hz": 4000.0}, "fmin_hz=5000.0 must be below fmax_hz=4000.0"),
        ({"n_fft": 500 + 1}, "n_fft must be an even integer"),
        ({"n_fft": 8}, "n_fft must be an even integer >= 16"),
        ({"hop_s": 0.00001}, "hop_s=1e-05 must be at least one sample at 16000 Hz"),
        ({"window": "kaiser"}, "window must be one of"),
        ({"compression": "cube"}, "compression must be one of"),
        ({"top_db": 0.0}, "top_db must be > 0"),
        ({"pcen_gain": 1.5}, "pcen_gain must be in"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        SpectrogramConfig(16000, **overrides)


def test_linear_band_without_bins_is_an_error():
    config = SpectrogramConfig(16000, n_fft=16, scale="linear", fmin_hz=1010.0, fmax_hz=1020.0)
    with pytest.raises(ValueError, match="no FFT bin"):
        Spectrogram(config)(torch.zeros(1000))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    for compression in ("db", "pcen"):
        module = Spectrogram(SpectrogramConfig(32000, n_mels=64, compression=compression))
        y = torch.from_numpy(np.stack([noise(64000, seed) for seed in range(4)]))
        reference = module(y, n_fft=1024)
        module.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = module(y.cuda(), n_fft=1024)
        assert out.device.type == "cuda" and out.dtype == torch.float32
        torch.testing.assert_close(out.cpu(), reference, atol=1e-2, rtol=1e-3)


def test_power_spectrogram_matches_librosa_and_takes_short_audio():
    from biomae.spectral import power_spectrogram

    audio = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    got = power_spectrogram(audio, 256, 100)  # (129, 41)
    want = np.abs(librosa.stft(audio, n_fft=256, hop_length=100, pad_mode="reflect")) ** 2
    assert got.shape == want.shape == (129, 41) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    short = power_spectrogram(audio[:50], 256, 100)  # zero-padded to half a window, then reflected
    assert short.shape == (129, 2) and np.isfinite(short).all() and short.sum() > 0


# ---- the model's front end: dB (shipped) or PCEN (issue 16: level and hiss) -----------------

FRONT_RATE = 32000
WINDOW = int(5.12 * FRONT_RATE)


def _hiss(level_dbfs: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(WINDOW) * 10 ** (level_dbfs / 20)


def _chirp(level_dbfs: float) -> np.ndarray:
    """A 0.3-s 3-4.2 kHz Hann-shaped chirp of ``level_dbfs`` RMS at 2 s (frames 200-230)."""
    t_s = np.arange(int(0.3 * FRONT_RATE)) / FRONT_RATE
    phase = 2 * np.pi * np.cumsum(3000 + 4000 * t_s) / FRONT_RATE
    tone = np.sin(phase) * np.hanning(len(t_s)) * np.sqrt(2 / 0.375) * 10 ** (level_dbfs / 20)
    out = np.zeros(WINDOW)
    out[2 * FRONT_RATE : 2 * FRONT_RATE + len(tone)] = tone
    return out


def _front(compression: str):
    front = FrontEnd(FrontEndConfig(n_mels=64, compression=compression), patch_t=16)
    return lambda audio: front(torch.from_numpy(audio.astype(np.float32))[None])[0].numpy()


def test_pcen_front_end_does_not_care_about_gain():
    """±30 dB of gain moves the PCEN features by < 5 % of their range; the dB front end moves
    18 % at −30 dB (quiet bands reach its power floor ``amin``)."""
    scene = _chirp(-40) + _hiss(-70, seed=0)
    for compression, tolerance in (("pcen", 0.05), ("db", None)):
        features = _front(compression)
        ref = features(scene)
        worst = max(
            np.abs(features(scene * 10 ** (gain_db / 20)) - ref).max() for gain_db in (-30, 30)
        )
        if tolerance is not None:
            assert worst < tolerance * (ref.max() - ref.min())
        else:
            assert worst > 0.1 * (ref.max() - ref.min())  # why PCEN is offered


def test_pcen_front_end_hears_hiss_as_hiss_whatever_its_level():
    """Stationary noise from −80 to −20 dBFS gives the same low, flat PCEN output (within 5 % of
    a call window's range), and with 10 dB more noise the call still stands above all of it."""
    features = _front("pcen")
    call = features(_chirp(-40) + _hiss(-70, seed=1))
    span = call.max() - call.min()
    quiet, loud = features(_hiss(-80, seed=2)), features(_hiss(-20, seed=2))
    assert np.abs(quiet - loud).max() < 0.05 * span
    assert loud.max() < 0.6 * call[:, 200:230].max()
    noisier = features(_chirp(-40) + _hiss(-60, seed=3))
    outside = np.r_[0:190, 240 : noisier.shape[1]]
    assert noisier[:, 200:230].max() > 1.5 * noisier[:, outside].max()


def test_pcen_front_end_is_pcen_without_standardisation():
    config = FrontEndConfig(n_mels=64, compression="pcen")
    audio = torch.from_numpy(_chirp(-30) + _hiss(-60, seed=4)).float()[None]
    spectrogram = Spectrogram(config.build_config())(audio)
    np.testing.assert_array_equal(FrontEnd(config, patch_t=16)(audio), spectrogram[..., :512])
    assert spectrogram.min() >= 0  # PCEN, not a standardised dB spectrogram
    with pytest.raises(ValueError, match="front_end.compression"):
        FrontEndConfig(compression="log")


def test_old_model_files_keep_the_db_front_end():
    """A spec written before ``compression`` existed (the shipped starter's) loads as "db"."""
    import json

    from biomae.models.files import ModelSpec, read_spec, resolve_model_path

    starter = resolve_model_path("starter")
    if not starter.exists():
        pytest.skip("no packaged starter model")
    spec = read_spec(starter)
    assert spec.front_end.compression == "db"
    raw = json.loads(spec.to_json())
    raw["front_end"].pop("compression", None)
    raw["front_end"].pop("pcen_time_constant_s", None)
    assert ModelSpec.from_json(json.dumps(raw)).front_end.compression == "db"


@pytest.mark.slow
def test_pcen_front_end_exports_to_onnx_with_plain_ops(tmp_path):
    """The PCEN front end traces to ONNX (STFT, MatMul, Pow, Log, Exp …) and matches torch."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    config = FrontEndConfig(n_mels=64, compression="pcen")
    spectrogram = Spectrogram(config.build_config())

    class Features(torch.nn.Module):
        def forward(self, audio):
            return config.normalize(spectrogram(audio))

    audio = torch.from_numpy(_chirp(-30) + _hiss(-60, seed=5)).float()[None]
    program = torch.onnx.export(Features().eval(), (audio,), dynamo=True, opset_version=18)
    path = tmp_path / "pcen.onnx"
    program.save(str(path))
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "STFT" in ops and not ops & {"Loop", "Scan"}
    got = ort.InferenceSession(str(path)).run(
        None, {program.model.graph.inputs[0].name: audio.numpy()}
    )
    np.testing.assert_allclose(got[0], Features()(audio).numpy(), rtol=1e-4, atol=1e-4)
