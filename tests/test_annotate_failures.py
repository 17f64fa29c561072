"""`biomae annotate` never loses or corrupts results silently: events past the end, a format that
fails, a full disk, a bad --out, no audio, leftovers of a killed run, the summary's columns."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotate import AnnotateConfig, annotate
from biomae.annotate import files as _annotate_files
from biomae.annotations import make_events, read_annotations
from biomae.cli import main
from biomae.detectors.energy import EnergyDetector


def _write(path, seconds=1.0, sample_rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sf.write(path, (0.01 * rng.standard_normal(round(seconds * sample_rate))), sample_rate)


class _PastTheEnd:
    """A detector whose last event ends half a millisecond after the recording (rounding)."""

    name = "fake"

    def params(self) -> dict:
        return {"detector": self.name}

    def detect_file(self, path, recording=None):
        duration_s = sf.info(str(path)).duration
        return make_events(
            [
                {"start_s": 0.1, "end_s": 0.2, "label": "call"},
                {"start_s": duration_s - 0.0002, "end_s": duration_s + 0.0005, "label": "call"},
            ],
            recording=recording or str(path),
        )


def test_event_rounded_past_the_end_is_clipped_and_every_format_written(tmp_path):
    _write(tmp_path / "in" / "a.wav", seconds=1.00003)
    out = tmp_path / "out"
    config = AnnotateConfig(formats=["aoef", "csv"], progress=False)
    summary = annotate([tmp_path / "in"], out, _PastTheEnd(), config)
    assert list(summary["status"]) == ["done"], summary.loc[0, "error"]
    back = read_annotations(out / "in" / "a.aoef.json", "aoef")
    assert len(back) == 2 and back["end_s"].max() <= 1.00003
    assert len(pd.read_csv(out / "events.csv")) == 2


def test_a_format_that_fails_writes_none_and_the_run_tables_agree(tmp_path, monkeypatch):
    _write(tmp_path / "in" / "a.wav")
    _write(tmp_path / "in" / "b.wav")
    real = _annotate_files.write_annotations

    def failing(events, path, fmt, **options):
        if fmt == "aoef" and len(events) and "b.wav" in events["recording"].iloc[0]:
            raise ValueError("this format cannot hold that event")
        return real(events, path, fmt, **options)

    monkeypatch.setattr(_annotate_files, "write_annotations", failing)
    out = tmp_path / "out"
    config = AnnotateConfig(formats=["csv", "aoef"], progress=False)
    summary = annotate([tmp_path / "in"], out, _PastTheEnd(), config).set_index("key")
    assert summary.loc["in/a", "status"] == "done"
    assert summary.loc["in/b", "status"] == "error"
    assert "cannot hold" in summary.loc["in/b", "error"]
    assert not list((out / "in").glob("b.*")) and not list(out.rglob("*.part"))
    assert set(pd.read_csv(out / "events.csv")["recording"].str[-5:]) == {"a.wav"}


def test_disk_full_stops_the_run_naming_the_output_and_keeps_what_was_written(
    tmp_path, monkeypatch, capsys
):
    for name in ("a", "b", "c"):
        _write(tmp_path / "in" / f"{name}.wav")
    real = _annotate_files.write_annotations

    def disk_full(events, path, fmt, **options):
        if "b.events.csv" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(events, path, fmt, **options)

    monkeypatch.setattr(_annotate_files, "write_annotations", disk_full)
    out = tmp_path / "out"
    argv = ["annotate", str(tmp_path / "in"), "--out", str(out), "--quiet", "--format", "csv"]
    assert main([*argv, "--detector", "energy"]) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "b.events.csv" in err
    assert "unreadable" not in err
    assert (out / "in" / "a.events.csv").exists() and not (out / "in" / "b.events.csv").exists()
    assert (out / "manifest.jsonl").read_text().count("\n") == 1  # a.wav done, kept
    monkeypatch.setattr(_annotate_files, "write_annotations", real)
    assert main([*argv, "--detector", "energy"]) == 0
    assert list(pd.read_csv(out / "summary.csv")["skipped"]) == [True, False, False]


def test_out_is_a_file_or_not_writable(tmp_path, monkeypatch, capsys):
    _write(tmp_path / "in" / "a.wav")
    file = tmp_path / "taken.txt"
    file.write_text("mine")
    argv = ["annotate", str(tmp_path / "in"), "--quiet", "--detector", "energy", "--out"]
    assert main([*argv, str(file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert file.read_text() == "mine"

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_annotate_files, "atomic_open", read_only)
    assert main([*argv, str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "cannot write there (Permission denied)" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_empty_folder_or_no_audio_is_a_usage_error(tmp_path, capsys, content):
    folder = tmp_path / "in"
    folder.mkdir()
    if content:
        (folder / content).write_text("not audio")
    argv = ["annotate", str(folder), "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--detector", "energy"]) == 2
    assert "no audio files in this folder" in capsys.readouterr().err


def test_leftover_temporaries_of_a_killed_run_are_removed_but_not_users_files(tmp_path):
    _write(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    (out / "in").mkdir(parents=True)
    ours = [
        out / ".summary.csv.k2j4_x9a.part",
        out / "in" / ".a.page003.png.abcdefgh.part",
        out / ".biomae" / "in" / ".a.parquet.12345678.part",
        out / "in" / "..a.events.csv.abcdefgh.part.zyxwvuts.part",
    ]
    users = [out / "in" / ".draft.txt.abcdefgh.part", out / "mine.part", out / "notes.txt"]
    for path in ours + users:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    annotate([tmp_path / "in"], out, EnergyDetector(), AnnotateConfig(progress=False))
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in users)


def test_summary_has_integer_rates_detector_and_warning_columns(tmp_path, monkeypatch, capsys):
    from biomae import audio

    _write(tmp_path / "in" / "good.wav")
    _write(tmp_path / "in" / "cut.wav")
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    real_info = audio.info

    def info(path):  # as biomae.audio.info reports a truncated file (AudioInfo.warning)
        header = real_info(path)
        warning = "truncated: decoded 1.0 s" if "cut" in str(path) else None
        return SimpleNamespace(**(vars(header) | {"warning": warning}))

    monkeypatch.setattr(audio, "info", info)

    class Routed(EnergyDetector):
        def name_for(self, path):
            return "model" if "good" in str(path) else "energy"

    annotate([tmp_path / "in"], tmp_path / "out", Routed(), AnnotateConfig(progress=False))
    text = (tmp_path / "out" / "summary.csv").read_text()
    assert ",16000,1," in text and "16000.0" not in text
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("key")
    assert summary.loc["in/good", "detector"] == "model"
    assert summary.loc["in/cut", "detector"] == "energy"
    assert summary.loc["in/cut", "warning"] == "truncated: decoded 1.0 s"
    assert summary["warning"].notna().sum() == 1


def test_printed_summary_counts_detectors_warnings_and_exit_code(tmp_path, capsys):
    _write(tmp_path / "in" / "good.wav")
    (tmp_path / "in" / "broken.wav").write_bytes(b"")
    argv = ["annotate", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--detector", "energy"]) == 1  # a recording failed
    out = capsys.readouterr().out
    assert "1 recording(s) annotated" in out and "1 error(s), 0 warning(s)" in out
    assert "by detector: energy 1" in out
