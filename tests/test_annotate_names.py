"""`biomae annotate` output names and resuming: same-named recordings of different sites, a rerun
with other settings, a changed recording."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from biomae.annotate import AnnotateConfig, UsageError, annotate, find_recordings
from biomae.cli import main
from biomae.detectors.energy import EnergyDetector


def _tone(path, at_s=0.3, sample_rate=16000, seconds=1.0, fmt=None):
    rng = np.random.default_rng(len(str(path)))
    audio = 0.002 * rng.standard_normal(round(seconds * sample_rate))
    a = round(at_s * sample_rate)
    t = np.arange(round(0.1 * sample_rate)) / sample_rate
    audio[a : a + len(t)] += 0.1 * np.sin(2 * np.pi * 2000 * t)
    sf.write(path, audio.astype(np.float32), sample_rate, format=fmt)


def _run(*args):
    return main(["annotate", *map(str, args), "--quiet", "--detector", "energy", "--format", "csv"])


@pytest.fixture
def sites(tmp_path):
    for site, at_s in (("siteA", 0.2), ("siteB", 0.6)):
        (tmp_path / site).mkdir()
        _tone(tmp_path / site / "20240101_000000.flac", at_s=at_s)
    return tmp_path


def test_same_file_name_in_two_sites_is_annotated_once_each(sites, tmp_path):
    out = tmp_path / "out"
    assert _run(sites / "siteB", "--out", out) == 0
    assert _run(sites / "siteA", sites / "siteB", "--out", out) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["key"]) == ["siteA/20240101_000000", "siteB/20240101_000000"]
    assert list(summary["skipped"]) == [False, True]  # siteB's was done by the first run
    events = pd.read_csv(out / "events.csv")
    assert sorted(events["recording"].str.split("/").str[-2]) == ["siteA", "siteB"]
    a = pd.read_csv(out / "siteA" / "20240101_000000.events.csv")
    b = pd.read_csv(out / "siteB" / "20240101_000000.events.csv")
    assert a.loc[0, "start_s"] < 0.4 < b.loc[0, "start_s"]  # each from its own recording


def test_keys_do_not_depend_on_the_other_inputs(sites):
    alone = find_recordings([sites / "siteB"])
    both = find_recordings([sites / "siteA", sites / "siteB"])
    as_file = find_recordings([sites / "siteB" / "20240101_000000.flac"])
    assert alone[0].key == both[1].key == as_file[0].key == "siteB/20240101_000000"


def test_same_stem_side_by_side_keeps_both_under_stable_names(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    _tone(folder / "rec.flac")
    _tone(folder / "rec.aiff", fmt="AIFF")
    _tone(folder / "other.wav")
    keys = {r.key for r in find_recordings([folder])}
    assert keys == {"site/rec.flac", "site/rec.aiff", "site/other"}
    assert find_recordings([folder / "rec.aiff"])[0].key == "site/rec.aiff"
    out = tmp_path / "out"
    assert _run(folder, "--out", out) == 0
    assert (out / "site" / "rec.flac.events.csv").exists()
    assert (out / "site" / "rec.aiff.events.csv").exists()
    assert len(pd.read_csv(out / "events.csv")) == 3


def test_two_inputs_with_one_name_are_refused(tmp_path):
    for parent in ("a", "b"):
        (tmp_path / parent / "site").mkdir(parents=True)
        _tone(tmp_path / parent / "site" / "x.wav")
    with pytest.raises(UsageError, match="would both be written as 'site/x'"):
        find_recordings([tmp_path / "a" / "site", tmp_path / "b" / "site"])
    assert find_recordings([tmp_path / "a", tmp_path / "b"])[1].key == "b/site/x"


def test_a_changed_recording_is_redone(sites, tmp_path):
    out = tmp_path / "out"
    assert _run(sites / "siteA", "--out", out) == 0
    path = sites / "siteA" / "20240101_000000.flac"
    _tone(path, at_s=0.7, seconds=1.5)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert _run(sites / "siteA", "--out", out) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert not summary.loc[0, "skipped"] and summary.loc[0, "duration_s"] == 1.5
    events = pd.read_csv(out / "events.csv")
    assert len(events) == 1 and events.loc[0, "start_s"] > 0.6


def test_rerun_with_other_settings_is_refused_until_overwrite(sites, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(sites / "siteA", "--out", out) == 0
    run_json = (out / "run.json").read_text()
    capsys.readouterr()
    assert _run(sites / "siteA", "--out", out, "--on-db", "12") == 2
    err = capsys.readouterr().err
    assert "detector.on_db: 8.0 -> 12.0" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "run.json").read_text() == run_json  # still describes the results there
    assert _run(sites / "siteA", "--out", out, "--on-db", "12", "--overwrite") == 0
    assert json.loads((out / "run.json").read_text())["detector"]["on_db"] == 12.0
    summary = pd.read_csv(out / "summary.csv")
    assert not summary["skipped"].any()
    # new inputs with the same settings resume: siteA is skipped, siteB added
    assert _run(sites / "siteA", sites / "siteB", "--out", out, "--on-db", "12") == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["skipped"]) == [True, False]
    inputs = json.loads((out / "run.json").read_text())["inputs"]
    assert inputs == [str(sites / "siteA"), str(sites / "siteB")]


def test_format_change_is_a_settings_change(sites, tmp_path):
    out = tmp_path / "out"
    detector = EnergyDetector()
    annotate([sites / "siteA"], out, detector, AnnotateConfig(progress=False))
    with pytest.raises(UsageError, match=r'annotate.formats: \["raven"\] -> \["csv"\]'):
        annotate([sites / "siteA"], out, detector, AnnotateConfig(formats=["csv"], progress=False))
    # progress is not a setting
    annotate([sites / "siteA"], out, detector, AnnotateConfig(progress=True))


def test_speed_only_model_settings_are_not_settings_changes():
    from biomae.annotate.files import settings_changes

    old = {"detector": {"below": {"batch_size": 16, "num_workers": 0, "threshold_on": 0.9}}}
    new = {"detector": {"below": {"batch_size": 64, "num_workers": 4, "threshold_on": 0.9}}}
    assert settings_changes(old, new) == []
    new["detector"]["below"]["threshold_on"] = 0.5
    assert settings_changes(old, new) == ["detector.below.threshold_on: 0.9 -> 0.5"]
