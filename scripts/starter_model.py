"""Build the biomae starter model (issue 9) from ../shared/data: see ``starter_recipe.py`` beside.

    OMP_NUM_THREADS=1 python scripts/starter_model.py --out models/starter --seed 0 \
        [--budget-min 90] [--smoke] [--data ../shared/data]

Each stage prints its time and is skipped when its output exists (rerun to resume). ``--smoke``
runs a few steps of each stage on a handful of files (checks the pipeline, not the model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402
import starter_recipe as recipe  # noqa: E402  (scripts/, beside this file)

REPO = Path(__file__).resolve().parent.parent
SMOKE_FILES = {"pretrain": 8, "train": 4, "test": 1}  # per source, smoke runs only
SMOKE_SPECIES_FILES = 2


def read_toml(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8"))


def timed(name: str, timings: dict, fn, *args):
    """Run ``fn(*args)``, adding its seconds to ``timings[name]`` and printing them."""
    started = time.time()
    result = fn(*args)
    timings[name] = round(timings.get(name, 0.0) + time.time() - started, 1)
    print(f"starter: stage {name}: {time.time() - started:.1f} s", flush=True)
    return result


def _smoke_subset(files: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Keep a few recordings per source and use (by split coin), all other rows ``excluded``."""
    files = files.copy()
    unit = files["file"].map(lambda f: recipe.split_unit(seed, f))
    for (use, _), group in files.groupby(["use", "source"]):
        if use in SMOKE_FILES:
            drop = unit[group.index].sort_values().index[SMOKE_FILES[use] :]
            files.loc[drop, "use"] = "excluded"
    return files


def stage_pretrain(files: pd.DataFrame, work: Path, args, cap_s: float) -> dict:
    import glob

    from biomae.train.pretrain import pretrain
    from biomae.train.pretrain_config import config_from_dict

    raw = read_toml(REPO / "src" / "biomae" / "configs" / "starter_pretrain.toml")
    keep = files["use"].isin(["pretrain", "train"])
    raw["data"]["audio_globs"] = [glob.escape(str(args.data / f)) for f in files["file"][keep]]
    raw["train"].update(out_dir=str(work / "pretrain"), seed=args.seed, time_budget_s=cap_s)
    if args.pretrain_steps:
        raw["optim"]["max_steps"] = args.pretrain_steps
    if args.smoke:
        raw["optim"].update(max_steps=3, warmup_steps=1)
        raw["data"].update(batch_size=4, n_eval_windows=4)
        raw["train"].update(eval_every=0, ckpt_every=0, log_every=1)
    result = pretrain(
        config_from_dict(raw, "src/biomae/configs/starter_pretrain.toml"), progress=False
    )
    return {"steps": result["step"], "max_steps": raw["optim"]["max_steps"], "eval": result["eval"]}


def stage_labelled(files: pd.DataFrame, work: Path, args) -> dict:
    from biomae.datasets.synth import SynthConfig, write_soundscapes

    out = {}
    for side in ("train", "test"):
        chosen = files[files["use"] == side]
        events = recipe.index_events(args.data, chosen)
        out[side] = recipe.write_tables(args.data, chosen, events, work / "labelled" / side)
        if side == "train":
            events_csv = work / "train_events.csv"
            index = pd.read_csv(args.data / "index" / "events.csv")
            index[index["file"].isin(set(chosen["file"]))].to_csv(events_csv, index=False)
    backgrounds = [str(args.data / f) for f in files["file"][files["use"] == "pretrain"]]
    n, duration_s = (2, 10.0) if args.smoke else (40, 30.0)
    config = SynthConfig(
        duration_s=duration_s,
        density_per_min=40.0,
        snr_db=(-5.0, 20.0),
        events_path=str(events_csv),
        audio_root=str(args.data),
        backgrounds=tuple(backgrounds),
        max_snippets=50 if args.smoke else 1500,
        max_backgrounds=4 if args.smoke else 60,
    )
    manifest = json.loads(
        write_soundscapes(config, work / "labelled" / "train" / "synth", n, args.seed).read_text()
    )
    out["synth_soundscapes"], out["synth_calls"] = n, sum(f["n_placed"] for f in manifest["files"])
    out["synth_hours"] = round(n * duration_s / 3600, 3)
    # procedural calls of many shapes (sweeps, trills, stacks, pulses, noise bursts) on permissive
    # backgrounds or generated noise: the detector should not learn one species only
    n_proc = 2 if args.smoke else 120
    proc = SynthConfig(
        duration_s=duration_s,
        density_per_min=40.0,
        snr_db=(-5.0, 20.0),
        backgrounds=tuple(backgrounds),
        max_backgrounds=4 if args.smoke else 60,
        procedural_calls=50 if args.smoke else 3000,
        noise_background_prob=0.5,
    )
    out_dir = work / "labelled" / "train" / "synth_procedural"
    manifest = json.loads(write_soundscapes(proc, out_dir, n_proc, args.seed).read_text())
    out["procedural_soundscapes"] = n_proc
    out["procedural_calls"] = sum(f["n_placed"] for f in manifest["files"])
    out["procedural_hours"] = round(n_proc * duration_s / 3600, 3)
    return out


def stage_finetune(work: Path, args, cap_s: float) -> dict:
    from biomae.train.finetune import config_from_dict, finetune

    raw = read_toml(REPO / "src" / "biomae" / "configs" / "starter_finetune.toml")
    raw["data"]["data_dir"] = str((work / "labelled" / "train").resolve())
    raw["finetune"]["init"] = str(work / "pretrain" / "encoder.safetensors")
    raw["train"].update(out_dir=str(work / "finetune"), seed=args.seed, time_budget_s=cap_s)
    if args.finetune_steps:
        raw["optim"]["max_steps"] = args.finetune_steps
    if args.smoke:
        raw["optim"].update(max_steps=3, warmup_steps=1)
        raw["data"].update(batch_size=4, val_fraction=0.3)
        raw["train"].update(eval_every=0, ckpt_every=0, log_every=1)
    result = finetune(config_from_dict(raw, "src/biomae/configs/starter_finetune.toml"))
    return {
        "steps": result["step"],
        "max_steps": raw["optim"]["max_steps"],
        "best_val_f1": result["best_score"],
    }


def event_scores(pred: pd.DataFrame, ref: pd.DataFrame) -> dict:
    from biomae.metrics.events import MatchConfig, event_f1

    overall = event_f1(pred, ref, MatchConfig(iou_threshold=0.3)).overall.as_dict()
    values = {k: float(overall[k]) for k in overall}  # precision is NaN without predictions
    return {k: (round(v, 4) if v == v else None) for k, v in values.items()} | {"n_ref": len(ref)}


def _detect(det, root: Path, names: list[str]) -> pd.DataFrame:
    """Events of recordings ``root / name`` from ``det``, named by ``name``."""
    from biomae.annotations.schema import concat_events

    if hasattr(det, "detect_files"):  # BirdNET: one run for all files
        events = det.detect_files([str(root / f) for f in names])
        events["recording"] = events["recording"].map({str(root / f): f for f in names})
        return events
    return concat_events(det.detect_file(root / f, recording=f) for f in names)


def stage_evaluate(files: pd.DataFrame, work: Path, args) -> dict:
    import time

    from biomae.detectors.birdnet import BirdNETDetector, BirdNETUnavailable
    from biomae.detectors.energy import EnergyDetector
    from biomae.detectors.model import InferConfig, ModelDetector

    model = ModelDetector(work / "finetune" / "best.safetensors", InferConfig(device="cpu"))
    detectors = {"starter": model, "energy": EnergyDetector()}
    try:  # a baseline when the peers' venv is set up (bench/peers/setup_birdnet.sh)
        detectors["BirdNET V2.4"] = BirdNETDetector()
    except BirdNETUnavailable as err:
        print(f"starter: BirdNET baseline skipped: {err}", flush=True)
    unseen = files[(files["use"] == "eval-only") & (files["taxon"] == recipe.UNSEEN_SPECIES)]
    if args.smoke:
        unseen = unseen.head(SMOKE_SPECIES_FILES)
    sets = {
        "held-out": (files[files["use"] == "test"], work / "labelled" / "test", False),
        "unseen species (zebra finch)": (unseen, args.data, False),
    }
    for source, name in recipe.PARTIAL_SETS.items():
        chosen = files[(files["use"] == "eval-partial") & (files["source"] == source)]
        sets[name] = (chosen.head(SMOKE_SPECIES_FILES) if args.smoke else chosen, args.data, True)
    metrics = {}
    for name, (chosen, root, partial) in sets.items():
        ref = recipe.index_events(args.data, chosen)
        minutes = float(chosen["duration_s"].sum()) / 60
        metrics[name] = {}
        for det_name, det in detectors.items():
            started = time.perf_counter()
            pred = _detect(det, root, list(chosen["file"]))
            scores = event_scores(pred, ref) | {
                "per_min": round(len(pred) / max(minutes, 1e-9), 1),
                "seconds": round(time.perf_counter() - started, 2),
                "audio_s": round(minutes * 60, 1),
            }
            if partial:  # unboxed calls exist: precision and F1 mean nothing
                scores.update(precision=None, f1=None, partial=True)
            metrics[name][det_name] = scores
            print(f"starter: {name}: {det_name}: {scores}", flush=True)
    return metrics


def _size(model_path: Path) -> dict:
    """Parameters and analytic GFLOPs per second of audio of the fine-tuned model (encoder over
    all tokens, windows overlapping by the annotate default)."""
    from biomae.detectors.model import InferConfig
    from biomae.models.mae import MAEConfig
    from biomae.models.presets import flops_per_second_of_audio
    from biomae.train.finetune import load_finetuned

    model, config = load_finetuned(model_path)
    mae = MAEConfig(encoder=model.encoder.config)
    flops = flops_per_second_of_audio(
        mae, hop_s=config.front_end.hop_s, clip_s=config.data.window_s
    )
    overlap = InferConfig().overlap
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_gflop_per_audio_s": round(flops["encoder"] / (1 - overlap) / 1e9, 3),
        "overlap": overlap,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-min", type=float, default=90.0, help="training time caps")
    parser.add_argument("--smoke", action="store_true", help="a few steps per stage")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--pretrain-steps", type=int, default=0, help="0 = the config's")
    parser.add_argument("--finetune-steps", type=int, default=0, help="0 = the config's")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.data, work = args.data.resolve(), (args.out / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"timings_s": {}}
    timings = state["timings_s"]

    def save() -> None:
        from biomae.atomic_io import atomic_write_text

        atomic_write_text(state_path, json.dumps(state, indent=2, default=str) + "\n")

    inv_path = work / "inventory.csv"
    if not inv_path.exists():
        files = timed(
            "inventory", timings, recipe.inventory, args.data, args.seed, args.test_fraction
        )
        files = _smoke_subset(files, args.seed) if args.smoke else files
        files.to_csv(inv_path, index=False)
    files = pd.read_csv(inv_path, keep_default_na=False)
    budget_s = args.budget_min * 60
    for name, fn, fn_args in (
        ("pretrain", stage_pretrain, (files, work, args, 0.5 * budget_s)),
        ("labelled", stage_labelled, (files, work, args)),
        ("finetune", stage_finetune, (work, args, 0.4 * budget_s)),
        ("evaluate", stage_evaluate, (files, work, args)),
    ):
        if name not in state:
            state[name] = timed(name, timings, fn, *fn_args)
            save()
        else:
            print(f"starter: stage {name}: done before, skipped", flush=True)
    capped = [s for s in ("pretrain", "finetune") if state[s]["steps"] < state[s]["max_steps"]]
    size = recipe.copy_model(
        work / "finetune" / "best.safetensors", args.out / "starter.safetensors"
    )
    events = recipe.index_events(args.data, files)
    info = {
        "seed": args.seed,
        "smoke": args.smoke,
        "summary": recipe.data_summary(files, events).to_dict("records"),
        "test_files": sorted(files["file"][files["use"] == "test"]),
        "recipe": {
            "pretrain_steps": state["pretrain"]["steps"],
            "finetune_steps": state["finetune"]["steps"],
            "capped": capped,
            "synth": {
                k: v for k, v in state["labelled"].items() if k.startswith(("synth", "procedural"))
            },
        },
        "metrics": state["evaluate"],
        "timings_s": timings,
        "size_bytes": size,
        "size": _size(args.out / "starter.safetensors"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    from biomae.atomic_io import atomic_write_text

    atomic_write_text(args.out / "MODEL_CARD.md", recipe.model_card(info))
    atomic_write_text(args.out / "run.json", json.dumps(info, indent=2, default=str) + "\n")
    total = sum(timings.values())
    print(f"starter: {args.out}/starter.safetensors ({size / 2**20:.1f} MB), {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
