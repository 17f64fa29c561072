"""Fine-tuning: configs, data discovery and splits, windows, layer decay, a resumable run, the CLI,
and (slow) detection of synthetic tones and chirps in noise to event F1 >= 0.9 on held-out files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from biomae.annotations import make_events, write_annotations
from biomae.train.finetune import (
    LabeledWindows,
    build_model,
    config_from_dict,
    find_labeled,
    load_config,
    param_groups,
    split_labeled,
)
from biomae.train.pretrain_config import ConfigError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000


def synth_soundscapes(folder: Path, n_files: int, seed: int, duration_s: float = 12.0) -> None:
    """FLAC files of white noise with tones and chirps (1.5-5 kHz, 0.15-0.5 s, >= 0.3 s apart),
    each with its Raven table. Labels: "tone" / "chirp"; individuals "ind<file // 2>"."""
    import soundfile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = round(duration_s * SAMPLE_RATE)
    for k in range(n_files):
        audio = rng.normal(0, 0.05, n)
        rows, t = [], rng.uniform(0.2, 1.0)
        while True:
            length_s = rng.uniform(0.15, 0.5)
            if t + length_s > duration_s - 0.2:
                break
            f0 = rng.uniform(1500, 5000)
            sweep = rng.choice([0.0, rng.uniform(-1000, 1000)])
            time = np.arange(round(length_s * SAMPLE_RATE)) / SAMPLE_RATE
            phase = 2 * np.pi * (f0 * time + 0.5 * sweep / length_s * time**2)
            ramp = np.minimum(1.0, np.minimum(time, length_s - time) / 0.005)
            start = round(t * SAMPLE_RATE)
            audio[start : start + len(time)] += rng.uniform(0.1, 0.3) * ramp * np.sin(phase)
            low, high = sorted([f0, f0 + sweep])
            label = "chirp" if sweep else "tone"
            rows.append(
                {
                    "start_s": start / SAMPLE_RATE,
                    "end_s": (start + len(time)) / SAMPLE_RATE,
                    "low_hz": low,
                    "high_hz": high,
                    "label": label,
                    "individual": f"ind{k // 2}",
                }
            )
            t += length_s + rng.uniform(0.3, 1.5)
        path = folder / f"scape_{k:02d}.flac"
        soundfile.write(path, (audio / np.abs(audio).max() * 0.9).astype(np.float32), SAMPLE_RATE)
        write_annotations(make_events(rows), folder / f"scape_{k:02d}.selections.txt", "raven")


def small_config(data_dir: Path, out_dir: Path, **sections) -> dict:
    raw = {
        "model": {"preset": "tiny", "overrides": {"encoder.n_mels": 64, "encoder.depth": 2}},
        "front_end": {"sample_rate": SAMPLE_RATE, "n_fft": 512, "hop_s": 0.01, "n_mels": 64},
        "data": {"data_dir": str(data_dir), "window_s": 1.28, "batch_size": 8, "val_fraction": 0.3},
        "optim": {"lr": 1e-3, "warmup_steps": 1, "max_steps": 2},
        "train": {"out_dir": str(out_dir), "eval_every": 0, "ckpt_every": 1, "log_every": 1},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


@pytest.fixture(scope="module")
def scapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scapes")
    synth_soundscapes(folder, n_files=6, seed=0, duration_s=6.0)
    return folder


@pytest.mark.parametrize("name", ["detect", "classify", "embed"])
def test_shipped_configs_load(name):
    labels = '["tone", "chirp"]'
    config = load_config(
        REPO / "src" / "biomae" / "configs" / f"finetune_{name}.toml",
        ["data.data_dir=somewhere", f"head.labels={labels}"],
    )
    assert config.head.task == name
    assert config.data.window_s * 100 % 16 == 0


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"\['bogus'\] in \[head\]"):
        config_from_dict({"data": {"data_dir": "x"}, "head": {"bogus": 1}})
    with pytest.raises(ConfigError, match="needs >= 2 head.labels"):
        config_from_dict({"data": {"data_dir": "x"}, "head": {"task": "classify"}})
    with pytest.raises(ConfigError, match="exactly one of data.data_dir"):
        config_from_dict({})


def test_find_labeled_reads_tables_and_needs_them(scapes, tmp_path):
    items = find_labeled(scapes)
    assert [it.name for it in items] == [f"scape_{k:02d}.flac" for k in range(6)]
    assert all(len(it.events) > 2 for it in items)
    assert set(items[0].events.recording) == {"scape_00.flac"}
    lonely = tmp_path / "lonely"
    synth_soundscapes(lonely, 1, seed=1, duration_s=2.0)
    (lonely / "scape_00.selections.txt").unlink()
    with pytest.raises(FileNotFoundError, match="scape_00.flac: no Raven table"):
        find_labeled(lonely)


def test_catalog_source_takes_fully_annotated_recordings(scapes, tmp_path):
    import pandas as pd

    from biomae.annotations.schema import concat_events
    from biomae.datasets.catalog import Catalog
    from biomae.train.finetune import catalog_labeled

    items = find_labeled(scapes)
    paths = [it.recording.path for it in items]
    recordings = pd.DataFrame({"path": paths, "annotation": ["full"] * 5 + ["partial"]})
    recordings["regions"] = [None] * 5 + ["[[0.0, 2.0]]"]
    events = concat_events(
        it.events.assign(recording=p) for it, p in zip(items, paths, strict=True)
    )
    Catalog(tmp_path / "cat").add("scapes", recordings, events)
    got, left_out = catalog_labeled(str(tmp_path / "cat"), ["scapes"])
    assert [it.name for it in got] == paths[:5] and left_out == paths[5:]
    assert [len(it.events) for it in got] == [len(it.events) for it in items[:5]]
    assert got[0].individuals == items[0].individuals == {"ind0"}
    with pytest.raises(ValueError, match="no dataset"):
        catalog_labeled(str(tmp_path / "cat"), ["birds"])
    # prepared audio (biomae data prepare): windows memory-mapped, the decoded ones within 16 bits
    assert Catalog(tmp_path / "cat").prepare_audio(SAMPLE_RATE, workers=0).n_written == 6
    mapped, _ = catalog_labeled(str(tmp_path / "cat"), ["scapes"], prepared_rate=SAMPLE_RATE)
    assert all(it.recording.prepared for it in mapped) and not any(
        it.recording.prepared for it in got
    )
    n_samples = round(1.28 * SAMPLE_RATE)
    a, b = (LabeledWindows(x, n_samples, SAMPLE_RATE, 8, seed=3, positive_fraction=0.5).batch(2)
            for x in (mapped, got))  # fmt: skip
    torch.testing.assert_close(a["audio"], b["audio"], atol=0.5 / 32768, rtol=0)
    assert a["labels"] == b["labels"] and a["offsets_s"] == b["offsets_s"]
    with pytest.raises(ConfigError, match="data.prepared reads a catalog"):
        config_from_dict({"data": {"data_dir": "x", "prepared": True}})


def test_split_by_individual_keeps_individuals_together(scapes):
    items = find_labeled(scapes)
    for by in ("recording", "individual"):
        train, val = split_labeled(items, 0.3, by)
        assert train and val and len(train) + len(val) == len(items)
        assert not {it.name for it in train} & {it.name for it in val}
    train, val = split_labeled(items, 0.3, "individual")
    individuals = [
        set().union(*(set(it.events.individual) for it in side)) for side in (train, val)
    ]
    assert not individuals[0] & individuals[1]
    assert split_labeled(items, 0.3, "individual") == (train, val)  # stable


def test_windows_are_deterministic_and_place_events_inside(scapes):
    items = find_labeled(scapes)
    n_samples = round(1.28 * SAMPLE_RATE)
    windows = LabeledWindows(items, n_samples, SAMPLE_RATE, 8, seed=3, positive_fraction=1.0)
    first, again = windows.batch(5), windows.batch(5)
    assert torch.equal(first["audio"], again["audio"]) and first["audio"].shape == (8, n_samples)
    for item, offset_s, label in zip(
        first["items"], first["offsets_s"], first["labels"], strict=True
    ):
        ev = item.events
        inside = (ev.start_s >= offset_s - 1e-9) & (ev.end_s <= offset_s + 1.28 + 1e-9)
        assert label in set(ev.label[inside])  # every event fits (all are shorter than the window)
    pairs = LabeledWindows(
        items, n_samples, SAMPLE_RATE, 8, seed=3, positive_fraction=0.0, pairs=True
    ).batch(0)
    assert pairs["labels"][0::2] == pairs["labels"][1::2] and None not in pairs["labels"]


def test_layer_decay_and_frozen_probe(scapes, tmp_path):
    config = config_from_dict(small_config(scapes, tmp_path))
    model = build_model(config)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    depth = len(model.encoder.blocks)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale_of[id(model.encoder.blocks[0].attn.qkv.weight)] == pytest.approx(0.5**depth)
    assert scale_of[id(model.encoder.blocks[-1].attn.qkv.weight)] == pytest.approx(0.5)
    assert all(scale_of[id(p)] == 1.0 for p in model.head.parameters())
    assert len(scale_of) == sum(1 for _ in model.parameters())
    assert all(g["weight_decay"] == 0.0 for g in groups if g["params"][0].ndim < 2)
    frozen = build_model(
        config_from_dict(small_config(scapes, tmp_path, finetune={"freeze_encoder": True}))
    )
    trainable = {id(p) for g in param_groups(frozen, 0.05, 0.5) for p in g["params"]}
    assert trainable == {id(p) for p in frozen.head.parameters()}
    bad = small_config(scapes, tmp_path, data={"window_s": 1.0})
    with pytest.raises(ConfigError, match="multiple of patch_t=16"):
        build_model(config_from_dict(bad))


def test_run_resumes_and_cli(scapes, tmp_path):
    """A 2-step run writes checkpoint, best model and metrics; a rerun with more steps resumes;
    the CLI runs the same config; the saved model loads and reproduces its outputs."""
    from biomae.cli import main
    from biomae.train.finetune import finetune, load_finetuned

    raw = small_config(
        scapes,
        tmp_path / "run",
        head={"outputs": ["activity", "onset", "offset"]},
        decode={"refine_search_s": 0.04},
    )
    lines: list[str] = []
    summary = finetune(config_from_dict(raw), log=lines.append)
    assert summary["step"] == 2 and summary["best_path"].is_file()
    assert math.isfinite(summary["best_score"]) and 0 <= summary["best_score"] <= 1
    raw["optim"]["max_steps"] = 3
    more = finetune(config_from_dict(raw), log=lines.append)
    assert more["step"] == 3 and any("resuming from step 2" in line for line in lines)
    import pandas as pd

    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["step"].tolist() == [1, 2, 3]
    assert metrics["val_score"].notna().tolist() == [False, True, True]  # at the end of each run
    model, config = load_finetuned(summary["best_path"])
    assert config.head.task == "detect" and model.head.frame_hop_s == pytest.approx(0.02)
    spec = torch.randn(1, 64, 128)
    again, _ = load_finetuned(summary["best_path"])
    assert set(model(spec)) == {"activity", "onset", "offset"}
    assert torch.allclose(model(spec)["onset"], again(spec)["onset"])
    raw["model"]["overrides"] = {"encoder.n_mels": 64, "encoder.depth": 3}  # changed model
    with pytest.raises(ConfigError, match=r"model\.overrides\.encoder\.depth 2 → 3"):
        finetune(config_from_dict(raw), log=lines.append)

    cli_out = tmp_path / "cli"
    toml = tmp_path / "ft.toml"
    toml.write_text(
        '[model]\npreset = "tiny"\noverrides = {"encoder.n_mels" = 64, "encoder.depth" = 1}\n'
        f"[front_end]\nsample_rate = {SAMPLE_RATE}\nn_fft = 512\nn_mels = 64\n"
        "[data]\nwindow_s = 1.28\nbatch_size = 4\nval_fraction = 0.3\n"
        "[optim]\nmax_steps = 1\nwarmup_steps = 1\n"
    )
    code = main(
        [
            "finetune",
            "--config",
            str(toml),
            "--init",
            "none",
            "--task",
            "detect",
            "--data",
            str(scapes),
            "--out",
            str(cli_out),
            "finetune.freeze_encoder=true",
        ]
    )
    assert code == 0 and (cli_out / "best.safetensors").is_file()
    assert (
        main(
            [
                "finetune",
                "--config",
                str(toml),
                "--data",
                str(scapes),
                "--out",
                str(cli_out),
                "--no-resume",
            ]
        )
        == 2
    )
    assert main(["finetune", "--config", str(toml), "--data", str(tmp_path / "none")]) == 2


@pytest.mark.parametrize("task", ["classify", "embed"])
def test_classify_and_embed_steps(scapes, tmp_path, task):
    from biomae.train.finetune import finetune

    raw = small_config(scapes, tmp_path / task, head={"task": task, "labels": ["tone", "chirp"]})
    raw["optim"]["max_steps"] = 1
    summary = finetune(config_from_dict(raw), log=lambda line: None)
    assert summary["step"] == 1 and math.isfinite(summary["best_score"])
    assert summary["best_score"] <= 0 if task == "embed" else 0 <= summary["best_score"] <= 1


@pytest.mark.slow
def test_detection_reaches_event_f1_on_held_out_synthetic_files(tmp_path):
    """The tiny preset (2 blocks), trained from scratch on 10 synthetic soundscapes, finds the
    tones and chirps of 3 unseen files with event F1 >= 0.9 at IoU >= 0.3."""
    from biomae.annotations.schema import concat_events
    from biomae.decode import decode_events
    from biomae.metrics.events import MatchConfig, event_f1
    from biomae.train.finetune import finetune, load_finetuned, predict_recording

    synth_soundscapes(tmp_path / "train", n_files=10, seed=0, duration_s=12.0)
    synth_soundscapes(tmp_path / "test", n_files=3, seed=100, duration_s=12.0)
    raw = small_config(
        tmp_path / "train",
        tmp_path / "run",
        data={"batch_size": 16, "val_fraction": 0.2},
        optim={"lr": 1e-3, "warmup_steps": 10, "max_steps": 80},
        train={"eval_every": 40, "ckpt_every": 40, "log_every": 20},
        decode={
            "threshold_on": 0.5,
            "threshold_off": 0.3,
            "min_duration_s": 0.05,
            "merge_gap_s": 0.04,
        },
    )
    summary = finetune(config_from_dict(raw), log=print)
    model, config = load_finetuned(summary["best_path"])
    items = find_labeled(tmp_path / "test")
    predictions = [
        decode_events(
            predict_recording(model, it, config, "cpu")["activity"],
            model.head.frame_hop_s,
            [""],
            config.decode,
            recording=it.name,
        )
        for it in items
    ]
    reference = concat_events(it.events for it in items)
    scores = event_f1(concat_events(predictions), reference, MatchConfig(iou_threshold=0.3))
    print(scores.overall)
    assert len(reference) >= 20 and scores.overall.f1 >= 0.9


def test_init_from_a_pretrained_encoder(scapes, tmp_path):
    """``finetune.init`` loads an exported encoder (the format of ``biomae pretrain``)."""
    import dataclasses
    import json

    from safetensors.torch import save_file

    from biomae.models.files import ENCODER_FORMAT
    from biomae.models.presets import get_preset
    from biomae.models.vit import Encoder

    vit = get_preset("tiny", **{"encoder.n_mels": 64, "encoder.depth": 1}).encoder
    torch.manual_seed(123)
    encoder = Encoder(vit)
    path = tmp_path / "encoder.safetensors"
    metadata = {"format": ENCODER_FORMAT, "config": json.dumps(dataclasses.asdict(vit))}
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(path), metadata)
    model = build_model(
        config_from_dict(small_config(scapes, tmp_path, finetune={"init": str(path)}))
    )
    assert len(model.encoder.blocks) == 1 and model.encoder.training
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
    wrong = small_config(scapes, tmp_path, finetune={"init": str(path)})
    wrong["front_end"]["n_mels"] = 128
    with pytest.raises(ConfigError, match="n_mels=128 differs"):
        build_model(config_from_dict(wrong))


def test_calibrated_threshold_is_the_best_on_validation(scapes, tmp_path):
    """With finetune.calibrate_threshold the saved model decodes at the grid threshold that scores
    best on the validation recordings, threshold_off keeping its ratio to threshold_on."""
    from biomae.annotations.schema import concat_events
    from biomae.decode import decode_events
    from biomae.metrics.events import MatchConfig, event_f1
    from biomae.train.finetune import (
        CALIBRATION_THRESHOLDS,
        calibrated,
        finetune,
        load_finetuned,
        predict_recording,
        split_labeled,
    )

    raw = small_config(
        scapes,
        tmp_path / "run",
        finetune={"calibrate_threshold": True},
        optim={"lr": 1e-3, "warmup_steps": 1, "max_steps": 6},
        train={"eval_every": 3, "ckpt_every": 3},
        decode={"threshold_on": 0.5, "threshold_off": 0.25},
    )
    summary = finetune(config_from_dict(raw), log=print)
    model, config = load_finetuned(summary["best_path"])
    on, off = config.decode.thresholds("")
    assert on in CALIBRATION_THRESHOLDS and off == pytest.approx(on / 2)
    _, val_items = split_labeled(find_labeled(scapes), 0.3, "recording")
    probs = [predict_recording(model, it, config, "cpu") for it in val_items]
    reference = concat_events(it.events for it in val_items)

    def f1_at(threshold: float) -> float:
        decode = calibrated(config.decode, threshold)
        preds = [
            decode_events(p["activity"], model.head.frame_hop_s, [""], decode, recording=it.name)
            for p, it in zip(probs, val_items, strict=True)
        ]
        match = MatchConfig(iou_threshold=0.3)
        return event_f1(concat_events(preds), reference, match).overall.f1

    scores = {t: f1_at(t) for t in CALIBRATION_THRESHOLDS}
    assert scores[on] == pytest.approx(max(scores.values()))
    assert summary["best_score"] == pytest.approx(scores[on])
