"""Annotating with a model: overlap averaging, exact frame arithmetic, time expansion, the CLI.

The model is ``tiny_detect_model`` (conftest.py): random weights, for the mechanics only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from biomae.annotations import validate_events
from biomae.cli import main
from biomae.detectors.model import InferConfig, ModelDetector
from biomae.detectors.postprocess import PostProcess


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(0)
    audio = 0.05 * rng.standard_normal(16000 * 5 + 123).astype(np.float32)  # 5.0077 s
    path = tmp_path_factory.mktemp("audio") / "rec.wav"
    sf.write(path, audio, 16000)
    return path


def _direct_scores(detector, audio):
    """Consecutive, non-overlapping windows run one by one (the reference)."""
    n = detector.window_samples
    out = []
    for start in range(0, len(audio), n):
        window = np.pad(audio[start : start + n], (0, max(0, start + n - len(audio))), "wrap")
        with torch.no_grad():
            model, front_end = detector.windows.model, detector.windows.front_end  # torch's
            logits = model(front_end(torch.from_numpy(window[None])))["activity"]
        out.append(torch.sigmoid(logits)[0].numpy())
    return np.concatenate(out)


def test_no_overlap_equals_window_by_window(tiny_detect_model, recording):
    detector = ModelDetector(tiny_detect_model, InferConfig(overlap=0.0, bf16=False, batch_size=3))
    scores, frame_hop_s, _ = detector.frame_scores(recording)
    audio = sf.read(recording, dtype="float32")[0]
    assert frame_hop_s == pytest.approx(0.02)
    assert len(scores) == int(np.ceil(len(audio) / (0.02 * 16000)))
    direct = _direct_scores(detector, audio)[: len(scores)]
    np.testing.assert_allclose(scores, direct, atol=1e-5)


def test_overlapping_windows_are_averaged(tiny_detect_model, recording):
    detector = ModelDetector(tiny_detect_model, InferConfig(overlap=0.5, bf16=False))
    assert detector.scorer.hop_samples == detector.window_samples // 2
    scores, _, _ = detector.frame_scores(recording)
    audio = sf.read(recording, dtype="float32")[0]
    half = _direct_scores(detector, audio[detector.scorer.hop_samples :])  # the shifted windows
    first = _direct_scores(detector, audio)
    frames_per_hop = detector.scorer.hop_samples // detector.scorer.frame_hop_samples
    # frames of the second half of window 0 are the mean of window 0 and window 1 (shifted)
    i = slice(frames_per_hop, 2 * frames_per_hop)
    expected = (first[i] + half[:frames_per_hop]) / 2
    np.testing.assert_allclose(scores[i], expected, atol=1e-5)


def test_detect_file_events_and_boxes(tiny_detect_model, recording):
    detector = ModelDetector(tiny_detect_model, InferConfig(threshold_on=0.0, bf16=False))
    events = detector.detect_file(recording)
    assert len(events) == 1  # threshold 0: one event over the whole recording
    validate_events(events, sample_rate=16000, duration_s=5.0077)
    assert events.loc[0, "start_s"] == 0 and events.loc[0, "end_s"] >= 5.0
    with pytest.raises(ValueError, match="overlap"):
        InferConfig(overlap=1.0)


def test_boxes_find_tones_whether_read_together_or_apart(tiny_detect_model, tmp_path, monkeypatch):
    """Each event's box holds its own tone, whether its audio is read with its neighbours (one
    spectrogram) or alone (a span too short to share), and both ways agree."""
    import biomae.detectors.model as detector_module

    rate, tones_hz = 16000, (1000.0, 3000.0, 6000.0)
    t = np.arange(rate * 6) / rate
    audio = 0.001 * np.random.default_rng(2).standard_normal(len(t))
    starts = np.array([1.0, 2.5, 4.0])
    for start, f_hz in zip(starts, tones_hz, strict=True):
        on = (t >= start) & (t < start + 0.5)
        audio[on] += 0.3 * np.sin(2 * np.pi * f_hz * t[on])
    path = tmp_path / "tones.wav"
    sf.write(path, audio.astype(np.float32), rate)
    detector = ModelDetector(tiny_detect_model, InferConfig(bf16=False))
    from biomae import audio as audio_io

    info = audio_io.info(path)
    together = detector._boxes(path, info, starts, starts + 0.5)
    monkeypatch.setattr(detector_module, "BOX_SPAN_S", 0.1)  # every event alone
    apart = detector._boxes(path, info, starts, starts + 0.5)
    np.testing.assert_allclose(together, apart, atol=2 * rate / 160)  # within two bins
    for (low_hz, high_hz), f_hz in zip(together, tones_hz, strict=True):
        assert low_hz <= f_hz <= high_hz and high_hz - low_hz < 500


def test_time_expansion_maps_back_to_real_time(tiny_detect_model, tmp_path):
    rate = 128000  # ultrasonic; with expansion 8 the 16-kHz model hears it at real speed / 8
    audio = 0.05 * np.random.default_rng(1).standard_normal(rate).astype(np.float32)
    path = tmp_path / "bat.wav"
    sf.write(path, audio, rate)
    detector = ModelDetector(tiny_detect_model, InferConfig(time_expansion=8, threshold_on=0.0))
    scores, frame_hop_s, stream_rate = detector.frame_scores(path)
    assert stream_rate == rate and frame_hop_s == pytest.approx(0.02 / 8)
    events = detector.detect_file(path)
    validate_events(events, sample_rate=rate, duration_s=1.0)
    assert events["end_s"].max() == pytest.approx(1.0, abs=frame_hop_s)


def test_annotate_cli_with_model(tiny_detect_model, recording, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "annotate",
            str(recording),
            "--out",
            str(out),
            "--model",
            str(tiny_detect_model),
            "--threshold",
            "0",
            "--format",
            "raven,csv",
            "--quiet",
        ]
    )
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "status"] == "done" and summary.loc[0, "n_events"] == 1
    assert (out / recording.parent.name / "rec.selections.txt").exists()  # its folder names it


def test_prefetch_keeps_order_and_raises_errors():
    from biomae.infer import prefetch

    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("bad block in rec.wav")

    with pytest.raises(ValueError, match="rec.wav"):
        list(prefetch(broken()))
    early = prefetch(iter(range(1000)), depth=2)
    assert next(early) == 0
    early.close()  # a consumer that stops early releases the producer


def test_windows_of_many_recordings_share_batches(tiny_detect_model, tmp_path):
    """Short recordings fill batches together; results equal recording-by-recording scoring,
    come in input order, and a corrupt file in the middle is an error for that file alone."""
    rng = np.random.default_rng(2)
    paths = []
    for i, seconds in enumerate([0.5, 2.0, 0.3, 1.1]):
        path = tmp_path / f"r{i}.wav"
        sf.write(
            path, (0.05 * rng.standard_normal(round(seconds * 16000))).astype(np.float32), 16000
        )
        paths.append(path)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEnot audio")
    paths.insert(2, bad)
    detector = ModelDetector(tiny_detect_model, InferConfig(bf16=False, batch_size=4))
    results = list(detector.scorer.frame_scores_many(paths))
    assert [p for p, _ in results] == paths
    assert isinstance(results[2][1], Exception) and "bad.wav" in str(results[2][1])
    for path, result in results:
        if path != bad:
            alone = ModelDetector(tiny_detect_model, InferConfig(bf16=False, batch_size=1))
            np.testing.assert_allclose(result[0], alone.frame_scores(path)[0], atol=1e-5)


def test_onset_offset_channels_reach_the_decoder(tmp_path, recording):
    from biomae.train.finetune import build_model, config_from_dict, save_finetuned

    config = config_from_dict(
        {
            "data": {"data_dir": str(tmp_path), "window_s": 1.28, "batch_size": 4},
            "model": {"preset": "tiny", "overrides": {"encoder.n_mels": 64, "encoder.depth": 1}},
            "front_end": {"sample_rate": 16000, "n_fft": 512, "n_mels": 64},
            "head": {"task": "detect", "outputs": ["activity", "onset", "offset"]},
            "decode": {"threshold_on": 0.0, "refine_search_s": 0.1},
            "train": {"out_dir": str(tmp_path)},
        }
    )
    path = tmp_path / "boundaries.safetensors"
    save_finetuned(build_model(config), config, path, extra={})
    detector = ModelDetector(path, InferConfig(bf16=False))
    assert detector.outputs == ("activity", "onset", "offset")
    scores, _, _ = detector.frame_scores(recording)
    assert scores.shape[1] == 3
    events = detector.detect_file(recording)  # refinement needs the onset/offset channels
    validate_events(events, sample_rate=16000, duration_s=5.0077)
    assert len(events) >= 1


def test_annotate_uses_the_installed_starter_model_by_default(
    tiny_detect_model, recording, tmp_path, monkeypatch
):
    import json

    monkeypatch.setenv("BIOMAE_STARTER_MODEL", str(tiny_detect_model))
    assert main(["annotate", str(recording), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    params = json.loads((tmp_path / "a" / "run.json").read_text())["detector"]
    assert params["detector"] == "auto" and params["model"]["detector"] == "starter-model"
    assert (
        main(
            [
                "annotate",
                str(recording),
                "--out",
                str(tmp_path / "b"),
                "--quiet",
                "--detector",
                "energy",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "b" / "run.json").read_text())["detector"]["detector"] == "energy"
    monkeypatch.setenv("BIOMAE_STARTER_MODEL", str(tmp_path / "missing.safetensors"))
    assert main(["annotate", str(recording), "--out", str(tmp_path / "c"), "--quiet"]) == 2


def test_dataloader_workers_give_the_same_scores_and_report_bad_files(
    tiny_detect_model, recording, tmp_path
):
    rng = np.random.default_rng(5)
    paths = []
    for k, seconds in enumerate([1.3, 3.0, 0.4]):
        path = tmp_path / f"r{k}.wav"
        sf.write(path, (0.05 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        paths.append(path)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    paths = [recording, paths[0], bad, paths[1], paths[2]]
    thread = ModelDetector(tiny_detect_model, InferConfig(bf16=False, batch_size=4))
    workers = ModelDetector(tiny_detect_model, InferConfig(bf16=False, batch_size=4, num_workers=2))
    expected = list(thread.scorer.frame_scores_many(paths))
    got = list(workers.scorer.frame_scores_many(paths))
    assert [p for p, _ in got] == paths  # input order, whatever the workers' interleaving
    for (_, a), (_, b) in zip(expected, got, strict=True):
        if isinstance(a, Exception):
            assert isinstance(b, Exception) and "bad.wav" in str(b)
        else:
            np.testing.assert_allclose(a[0], b[0], atol=1e-5)
            assert a[1:] == b[1:]
    with pytest.raises(ValueError, match="num_workers"):
        InferConfig(num_workers=-1)


@pytest.mark.parametrize(
    "device_type, flags, expected",
    [
        ("cpu", {"avx2", "avx512f", "avx512_bf16"}, False),  # AMD Zen 4/5: no faster, other calls
        ("cpu", {"avx2"}, False),  # no bf16 instructions: ~40x slower
        ("cpu", {"avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}, True),  # Sapphire Rapids
        ("cuda", set(), True),
    ],
)
def test_bf16_auto_only_where_it_is_faster_with_the_same_results(device_type, flags, expected):
    from biomae.devices import bf16_is_fast

    assert bf16_is_fast(device_type, flags) is expected


def test_bf16_auto_is_off_on_an_avx512_bf16_cpu_without_amx(tiny_detect_model, monkeypatch):
    from biomae import devices

    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert ModelDetector(tiny_detect_model, InferConfig(device="cpu")).bf16 is False
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx512_bf16", "amx_bf16", "amx_tile"})
    assert ModelDetector(tiny_detect_model, InferConfig(device="cpu")).bf16 is True
    assert ModelDetector(tiny_detect_model, InferConfig(device="cpu", bf16=False)).bf16 is False


def test_shared_options_apply_to_the_model_events(tiny_detect_model, recording):
    """--label / --min-duration-s reach the model's events through the shared post-processing,
    and a given minimum duration replaces the model's decode setting rather than adding to it."""
    base = dict(threshold_on=0.0, bf16=False)
    events = ModelDetector(
        tiny_detect_model, InferConfig(**base, post=PostProcess(label="bird"))
    ).detect_file(recording)
    assert len(events) == 1 and set(events["label"]) == {"bird"}
    longer = InferConfig(**base, post=PostProcess(min_duration_s=6.0))  # the recording lasts 5 s
    assert len(ModelDetector(tiny_detect_model, longer).detect_file(recording)) == 0
    detector = ModelDetector(
        tiny_detect_model, InferConfig(**base, post=PostProcess(min_duration_s=0.01))
    )
    assert detector.decode_config.min_duration_s == 0.0 and detector.post.min_duration_s == 0.01
    with pytest.raises(ValueError, match="high_hz"):
        InferConfig(post=PostProcess(low_hz=5000, high_hz=1000))
