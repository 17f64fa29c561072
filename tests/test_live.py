"""Live mode: a recording piped through ``biomae annotate - --live`` gives the events of annotating
the file (``--live-hop-s 0``; with the default short live windows, the file's events within a
stated tolerance, each printed within about a second of its end), printed as JSON lines as soon
as they are decided, with bounded memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biomae import audio as audio_io
from biomae.cli import main

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["start_s", "end_s", "low_hz", "high_hz", "score"]
SCORE_TOLERANCE = 1e-5  # the model's scores: windows batched differently (float32 matmul)
LIVE_F1_TOLERANCE = 0.7  # short live windows vs the file's, event F1 (IoU >= 0.5): an untrained
# model's (the starter on real recordings: 0.92, bench/results/live_agreement_2026-12-02.txt)


def _calls(path: Path, sample_rate: int = 16000, seconds: float = 30.0, seed: int = 0) -> Path:
    """Noise with a tone burst every ~0.6 s at random frequencies and lengths (16-bit WAV)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    audio = 0.01 * rng.standard_normal(n)
    t_s = 0.2
    while t_s < seconds - 0.5:
        length = round(rng.uniform(0.03, 0.4) * sample_rate)
        freq_hz = rng.uniform(500, 0.4 * sample_rate)
        start = round(t_s * sample_rate)
        tone = np.sin(2 * np.pi * freq_hz * np.arange(length) / sample_rate)
        audio[start : start + length] += rng.uniform(0.05, 0.5) * tone * np.hanning(length)
        t_s += rng.uniform(0.1, 1.2) + length / sample_rate
    audio_io.save(path, audio.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def _cli(args: list[str], stdin: bytes) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "biomae", "annotate", *args],
        input=stdin,
        capture_output=True,
        env=env,
        check=False,
    )


def _same_events(live: pd.DataFrame, batch: pd.DataFrame) -> None:
    assert len(live) == len(batch) > 0
    np.testing.assert_array_equal(live[COLUMNS[:4]].to_numpy(), batch[COLUMNS[:4]].to_numpy())
    np.testing.assert_allclose(live["score"], batch["score"], atol=SCORE_TOLERANCE, rtol=0)


@pytest.mark.parametrize("detector", ["energy", "model"])
def test_recording_piped_through_gives_the_files_events(detector, tmp_path, tiny_detect_model):
    wav = _calls(tmp_path / "calls.wav")
    options = ["--detector", "energy"] if detector == "energy" else [
        "--model", str(tiny_detect_model), "--threshold", "0.105", "--merge-gap-s", "0.04",
        "--live-hop-s", "0",  # the file's windows: the file's events exactly
    ]  # fmt: skip
    batch_out, live_out = tmp_path / "batch", tmp_path / "live"
    assert main(["annotate", str(wav), "--out", str(batch_out), *options, "--quiet"]) == 0
    done = _cli(["-", "--live", "--out", str(live_out), *options], wav.read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    batch = pd.read_parquet(batch_out / "events.parquet")
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    _same_events(pd.DataFrame(lines), batch)  # the JSON lines
    _same_events(pd.read_parquet(live_out / "events.parquet"), batch)  # the tables at EOF
    assert (live_out / "stdin.selections.txt").exists()
    summary = pd.read_csv(live_out / "summary.csv")
    assert summary.loc[0, "status"] == "done" and summary.loc[0, "n_events"] == len(batch)


def _live(args: list[str], stdin: bytes, monkeypatch, capsys) -> tuple[int, str, str]:
    """``biomae annotate ARGS`` in this process with ``stdin``: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(["annotate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_raw_pcm_needs_its_format_and_reads_as_the_wav(tmp_path, monkeypatch, capsys):
    wav = _calls(tmp_path / "calls.wav", seconds=8.0)
    pcm = (audio_io.load(wav)[0] * 2**15).round().astype("<i2").tobytes()
    common = ["-", "--live", "--detector", "energy"]
    code, from_wav, _ = _live([*common, "--out", str(tmp_path / "w")], wav.read_bytes(),
                              monkeypatch, capsys)  # fmt: skip
    assert code == 0 and from_wav.count("\n") > 3
    raw = [*common, "--out", str(tmp_path / "r"), "--sample-rate", "16000"]
    assert _live(raw, pcm, monkeypatch, capsys)[:2] == (0, from_wav)
    code, _, err = _live([*common, "--out", str(tmp_path / "x")], pcm, monkeypatch, capsys)
    assert code == 2 and "not a WAV stream" in err and "--sample-rate" in err
    code, _, err = _live([*raw, "--channels", "3"], pcm, monkeypatch, capsys)
    assert code == 1 and "ended inside a frame" in err  # 16,000 * 8 samples: not whole frames


def test_live_needs_stdin_as_the_only_input(tmp_path, capsys):
    wav = _calls(tmp_path / "calls.wav", seconds=2.0)
    assert main(["annotate", str(wav), "--live", "--out", str(tmp_path / "o")]) == 2
    assert "give - as the only PATH" in capsys.readouterr().err


def test_model_events_are_decided_before_the_stream_ends(tmp_path, tiny_detect_model):
    from biomae.detectors.model import InferConfig, ModelDetector
    from biomae.live import LiveModel

    wav = _calls(tmp_path / "calls.wav", seconds=20.0)
    detector = ModelDetector(tiny_detect_model, InferConfig(threshold_on=0.105))
    batch = detector.detect_file(wav)
    audio, rate = audio_io.load(wav)
    live = LiveModel(detector, rate, str(wav), hop_s=None)  # the file's windows
    early = []
    for i in range(0, len(audio), 4000):  # 4000-sample reads, as from a pipe
        early.append(live.feed(audio[i : i + 4000]))
    early = pd.concat(early)
    assert len(early) > len(batch) // 2  # most are out before EOF
    rest = live.finish()
    _same_events(pd.concat([early, rest], ignore_index=True), batch)
    # the score buffer holds what is undecided, not the stream
    assert len(live.total) < 3 * detector.window_samples / detector.scorer.frame_hop_samples


def _fed(live, audio: np.ndarray, read: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Events of ``audio`` fed ``read`` samples at a time, and for each the seconds of audio
    that had arrived past its end when it was printed (the latency, leaving out compute)."""
    parts, delays_s = [], []
    for i in range(0, len(audio), read):
        events = live.feed(audio[i : i + read])
        parts.append(events)
        delays_s += list(min(i + read, len(audio)) / live.sample_rate - events["end_s"])
    parts.append(live.finish())
    return pd.concat(parts, ignore_index=True), np.array(delays_s)


def _agreement(live: pd.DataFrame, batch: pd.DataFrame) -> float:
    """Event F1 of ``live`` against ``batch``: pairs overlapping by IoU >= 0.5, one to one."""
    from biomae.metrics.events import MatchConfig, event_f1

    return event_f1(live, batch, MatchConfig(iou_threshold=0.5)).overall.f1


def test_short_live_windows_print_each_event_within_a_second_of_its_end(
    tmp_path, tiny_detect_model
):
    from biomae.detectors.model import InferConfig, ModelDetector
    from biomae.live import LiveModel

    wav = _calls(tmp_path / "calls.wav", seconds=20.0)
    detector = ModelDetector(tiny_detect_model, InferConfig(threshold_on=0.105))
    batch = detector.detect_file(wav)
    audio, rate = audio_io.load(wav)
    live = LiveModel(detector, rate, str(wav), hop_s=0.32)  # windows of 1.28 s every 0.32 s
    events, delays_s = _fed(live, audio, round(0.02 * rate))  # 20-ms reads, as a sound card
    assert len(delays_s) > 0.8 * len(events) > 10  # nearly all printed before the end
    assert np.median(delays_s) <= 1.0  # the file's windows: about a window (1.28 s) and more
    assert _agreement(events, batch) >= LIVE_F1_TOLERANCE
    # the same events however the stream is cut into reads (decisions never depend on it)
    again, _ = _fed(LiveModel(detector, rate, str(wav), hop_s=0.32), audio, 7919)
    pd.testing.assert_frame_equal(again, events)
    # bounded: the scores since the last quiet frame, the audio of one window and a hop
    assert len(live.total) < 3 * detector.window_samples / detector.scorer.frame_hop_samples
    assert live.windows.end - live.windows.start <= detector.window_samples + 2 * 0.32 * rate


def test_energy_streams_block_by_block_with_bounded_memory(tmp_path):
    from biomae.detectors.energy import EnergyDetector, EnergyDetectorConfig
    from biomae.live import LiveEnergy

    wav = _calls(tmp_path / "calls.wav", sample_rate=8000, seconds=40.0)
    detector = EnergyDetector(EnergyDetectorConfig(block_s=5.0, noise_window_s=2.0))
    batch = detector.detect_file(wav)
    audio, rate = audio_io.load(wav)
    live = LiveEnergy(detector, rate, str(wav))
    parts, held = [], []
    for i in range(0, len(audio), 1777):
        parts.append(live.feed(audio[i : i + 1777]))
        held.append(live.audio.end - live.audio.start)
    parts.append(live.finish())
    events = pd.concat(parts, ignore_index=True)
    assert len(events) == len(batch) > 20
    np.testing.assert_array_equal(events[COLUMNS].to_numpy(), batch[COLUMNS].to_numpy())
    assert max(held) <= (5.0 + 2 * 2.0) * rate + 1777  # one block and its context


def test_ctrl_c_writes_the_tables_of_what_was_heard(tmp_path):
    import signal

    wav = _calls(tmp_path / "calls.wav", sample_rate=8000, seconds=140.0)  # past one 120-s block
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "live"
    command = [sys.executable, "-m", "biomae", "annotate", "-", "--live", "--detector", "energy"]
    proc = subprocess.Popen(
        [*command, "--out", str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    proc.stdin.write(wav.read_bytes())  # the stream stays open, as a recorder's
    proc.stdin.flush()
    first = json.loads(proc.stdout.readline())  # the first events are decided: it is listening
    proc.send_signal(signal.SIGINT)
    printed = [first] + [json.loads(line) for line in proc.stdout]
    assert proc.wait() == 130
    proc.stdin.close()
    events = pd.read_parquet(out / "events.parquet")
    assert len(events) == len(printed) > 10  # what was printed is in the tables, and the rest
    summary = pd.read_csv(out / "summary.csv")
    assert 130.0 < summary.loc[0, "duration_s"] <= 140.0  # what had been read
