"""The recipe of the starter model (issue 9), a small class-agnostic call detector trained only on
``shared/data``: its data selection and model card; ``scripts/starter_model.py`` (``make
starter-model``) runs it, reproducibly from a seed. The runtime package holds only the shipped
file and how ``biomae annotate`` finds it (:mod:`biomae.starter`).

Stages, each skipped when its output exists (pretraining and fine-tuning also resume from their
checkpoints), all under ``OUT/work``:

a. ``inventory``: ``index/files.csv`` with a license class per recording (:func:`license_class`)
   and its use: ``pretrain`` (permissive, unlabeled), ``train`` / ``test`` (permissive, annotated;
   split by recording, :func:`split_by_recording`), ``eval-only`` (research-use annotated sources,
   read in place from shared/data, never copied or trained on), ``eval-partial`` (the same for
   field recordings where only some calls are boxed: recall only) or ``excluded``;
b. ``pretrain``: MAE (``biomae/configs/starter_pretrain.toml``, tiny preset, mixtures) on every
   permissive recording except the test ones;
c. ``labelled``: one Raven table per train / test recording from ``index/events.csv``
   (:func:`write_tables`; audio symlinked, not copied) plus synthetic soundscapes from train
   snippets on permissive unlabeled backgrounds, and soundscapes of procedural calls of many
   shapes on those backgrounds or generated noise (:mod:`biomae.datasets.synth`);
d. ``finetune``: class-agnostic detection (``biomae/configs/starter_finetune.toml``) from
   the encoder;
e. ``evaluate``: event F1 at IoU >= 0.3 on the held-out recordings and on an unseen species, and
   recall on field recordings of unseen taxa with partial boxes, against the energy detector on
   the same recordings;
f. ``export``: ``OUT/starter.safetensors`` (<= 30 MB) and ``OUT/MODEL_CARD.md``
   (:func:`model_card`).

Determinism: the split is a hash of (seed, path), synthesis and training are seeded, and both
training stages stop at ``max_steps``; the time budgets are safety caps only, and a run that hits
one says so in the card (its step count then depends on the machine's speed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

MAX_MODEL_BYTES = 30 * 2**20
PERMISSIVE = ("cc-by-4.0", "cc-by", "cc0", "mit", "bsd", "apache")
RESTRICTED = ("research use", "do not", "internal use", "-nc", "nc-", "no license")
UNSEEN_SPECIES = "Taeniopygia guttata (zebra finch)"  # whisperseg: research use, evaluation only
# research-use field recordings with some calls boxed: recall only, evaluation only
PARTIAL_SETS = {
    "frog_degradation_ots2021": "field frogs, 17 species (partial boxes)",
    "bellbird_mimicry": "field bellbird and others (partial boxes)",
}


def license_class(text: str) -> str:
    """``restricted`` (research / internal use, NC, no license), ``copyleft`` (GPL: left out of
    the shipped model — whether GPL reaches trained weights is unsettled), ``permissive``
    (CC-BY, CC0, MIT, BSD, Apache) or ``unknown`` (left out)."""
    low = str(text).lower()
    if any(word in low for word in RESTRICTED):
        return "restricted"
    if "gpl" in low:
        return "copyleft"
    if any(word in low for word in PERMISSIVE):
        return "permissive"
    return "unknown"


def split_unit(seed: int, path: str) -> float:
    """A stable number in [0, 1) from ``seed`` and ``path`` (the split's coin)."""
    digest = hashlib.sha1(f"{seed}:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_recording(files: pd.DataFrame, test_fraction: float, seed: int) -> pd.Series:
    """``"train"`` / ``"test"`` per row of ``files`` (columns ``source``, ``file``): within each
    source the recordings whose :func:`split_unit` falls below ``test_fraction`` are held out, at
    least one and never all (a source needs >= 2 recordings). A recording is on one side only."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must lie in (0, 1)")
    side = pd.Series("train", index=files.index)
    for source, group in files.groupby("source", sort=True):
        if len(group) < 2:
            raise ValueError(f"source {source!r}: {len(group)} recording(s); a split needs >= 2")
        units = group["file"].map(lambda f: split_unit(seed, f)).sort_values()
        n_test = min(max(1, int((units < test_fraction).sum())), len(group) - 1)
        side[units.index[:n_test]] = "test"
    return side


def inventory(data_root: Path, seed: int, test_fraction: float) -> pd.DataFrame:
    """``index/files.csv`` plus ``license_class`` and ``use`` (module docstring, stage a)."""
    files = pd.read_csv(data_root / "index" / "files.csv", keep_default_na=False)
    files["license_class"] = files["license"].map(license_class)
    files["use"] = "excluded"
    permissive = files["license_class"].eq("permissive")
    annotated = files["task"].eq("detection") & files["annotation"].eq("full")
    files.loc[permissive & ~files["task"].eq("detection"), "use"] = "pretrain"
    labelled = permissive & annotated
    files.loc[labelled, "use"] = split_by_recording(files[labelled], test_fraction, seed)
    files.loc[~permissive & annotated, "use"] = "eval-only"
    partial = files["task"].eq("detection") & files["annotation"].eq("partial")
    files.loc[partial & files["source"].isin(PARTIAL_SETS), "use"] = "eval-partial"
    return files


def index_events(data_root: Path, files: pd.DataFrame) -> pd.DataFrame:
    """The events of ``files`` from ``index/events.csv`` as an event table (``recording`` = the
    file path relative to ``data_root``)."""
    from biomae.annotations.schema import make_events

    raw = pd.read_csv(data_root / "index" / "events.csv", keep_default_na=False)
    raw = raw[raw["file"].isin(set(files["file"]))]
    band = {c: pd.to_numeric(raw[c].replace("", float("nan"))) for c in ("low_hz", "high_hz")}
    return make_events(
        pd.DataFrame(
            {
                "recording": raw["file"],
                "start_s": raw["onset_s"].astype(float),
                "end_s": raw["offset_s"].astype(float),
                **band,
                "label": raw["label"].astype(str),
                "taxon": raw["taxon"],
                "source": raw["source"],
            }
        )
    )


def write_tables(data_root: Path, files: pd.DataFrame, events: pd.DataFrame, out_dir: Path) -> int:
    """For each row of ``files``: ``out_dir/<file>`` (a symlink to the audio in ``data_root``) and
    ``<stem>.selections.txt`` beside it holding its ``events`` (empty table: no events).

    Returns:
        The number of events written.
    """
    from biomae.annotations import write_annotations

    by_file = dict(tuple(events.groupby("recording")))
    n_events = 0
    for row in files.itertuples():
        link = out_dir / row.file
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to((data_root / row.file).resolve())
        table = by_file.get(row.file, events.iloc[:0])
        write_annotations(
            table.assign(recording=link.name),
            link.with_name(link.stem + ".selections.txt"),
            "raven",
            sample_rate=int(row.sr),
        )
        n_events += len(table)
    return n_events


def data_summary(files: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per source and use: recordings, hours, events and the license (for the card)."""
    counts = events.groupby("recording").size()
    table = files.assign(n_events=files["file"].map(counts).fillna(0).astype(int))
    return (
        table.groupby(["use", "source"], sort=True)
        .agg(
            recordings=("file", "size"),
            hours=("duration_s", lambda s: round(float(s.sum()) / 3600, 3)),
            events=("n_events", "sum"),
            license=("license", "first"),
        )
        .reset_index()
    )


def copy_model(best: Path, out: Path) -> int:
    """Copy the fine-tuned ``best`` to ``out`` after checking its size (<= 30 MB); returns bytes."""
    size = best.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise ValueError(f"{best}: {size} bytes exceeds the {MAX_MODEL_BYTES}-byte limit")
    shutil.copyfile(best, out)
    return size


def markdown_table(table: pd.DataFrame) -> str:
    cells = [list(map(str, table.columns))] + [list(map(str, r)) for r in table.to_numpy()]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    return "\n".join([lines[0], "|" + "---|" * len(table.columns), *lines[1:]])


def model_card(info: dict) -> str:
    """``MODEL_CARD.md`` from the run's ``info``: ``seed``, ``smoke``, ``summary`` (records of
    :func:`data_summary`), ``test_files``, ``recipe`` (``pretrain_steps``, ``finetune_steps``,
    ``capped``), ``metrics`` (``{evaluation: {detector: {precision, recall, f1, n_ref}}}``),
    ``timings_s`` ({stage: s}), ``size_bytes`` and ``machine``."""
    summary = pd.DataFrame(info["summary"])
    hours = summary.groupby("use")["hours"].sum().round(3).to_dict()
    metric_rows = [
        {"evaluation": name, "detector": det, **{k: v[k] for k in ("precision", "recall", "f1")}}
        | {"reference events": v["n_ref"], "detections per min": v.get("per_min", "")}
        for name, by_det in info["metrics"].items()
        for det, v in by_det.items()
    ]
    metrics = pd.DataFrame(metric_rows).round(3) if metric_rows else pd.DataFrame()
    metrics = metrics.astype(object).where(metrics.notna(), "n/a")
    recipe, total_s = info["recipe"], sum(info["timings_s"].values())
    synth = recipe.get("synth", {})
    caveat = (
        "\n**Smoke run**: a few steps per stage on a handful of files; these weights and numbers "
        "only show that the pipeline runs. Do not ship them.\n"
        if info["smoke"]
        else ""
    )
    capped = (
        "\n**A time budget cut training short** (stages: "
        + ", ".join(recipe["capped"])
        + "): the step count depends on this machine's speed, so a rerun may differ.\n"
        if recipe["capped"]
        else ""
    )
    return f"""# biomae starter model — class-agnostic call detector
{caveat}{capped}
`starter.safetensors` ({info["size_bytes"] / 2**20:.1f} MB) finds *when* an animal calls and the
frequency box of each call, without saying which animal. Load it with `biomae annotate --model
starter.safetensors` or `biomae.detectors.model.ModelDetector`. Reproduce it with `make
starter-model` (seed {info["seed"]}).

## Training data (only ../shared/data, permissive licenses only)

Hours per use: {json.dumps(hours)}. `pretrain`: unlabeled MAE audio; `train`: annotated, used for
fine-tuning (and cut into synthetic soundscapes on `pretrain` backgrounds); `test`: held out by
recording (never trained on, not even unlabeled); `eval-only` / `eval-partial`: research-use
sources, read in place for evaluation only (`eval-partial`: field recordings where only some calls
are boxed); `excluded`: GPL (a judgment call: whether GPL reaches trained weights is unsettled),
non-commercial, unlicensed or otherwise unusable recordings, unused.

Synthetic fine-tuning audio (generated by the recipe, not recorded):
{synth.get("synth_hours", 0)} h of soundscapes with {synth.get("synth_calls", 0)} Bengalese-finch
syllables cut from `train` recordings, and {synth.get("procedural_hours", 0)} h with
{synth.get("procedural_calls", 0)} procedural calls (frequency sweeps with harmonics, trills,
harmonic stacks, click trains, band-limited noise bursts; random frequencies 0.4-14.4 kHz and
durations; `biomae.datasets.synth.calls`), on `pretrain` backgrounds or generated coloured noise.

{markdown_table(summary)}

Attribution: Koumura (2016), figshare 3470165, CC-BY-4.0; Nicholson et al. (2017), figshare
4805749, CC-BY-4.0; unlabeled MIT / BSD / Apache / CC-BY sources as listed above.

Held-out test recordings ({len(info["test_files"])}): {", ".join(info["test_files"])}

## Recipe and compute

1. MAE pretraining of a small ViT (the tiny preset's width, 192, with 6 blocks over 64 mel bins
   of 0-16 kHz audio at 32 kHz: `biomae/configs/starter_pretrain.toml`), mixtures and noise,
   {recipe["pretrain_steps"]} steps.
2. Class-agnostic detection fine-tuning (`biomae/configs/starter_finetune.toml`), whole network with
   layer-wise decay, {recipe["finetune_steps"]} steps; best validation event F1 kept.

Compute: {info["machine"]}, fp32, one thread; {total_s / 60:.1f} min in all
({", ".join(f"{k} {v:.0f} s" for k, v in info["timings_s"].items())}).

## Metrics (event F1, IoU >= 0.3 in time, class-agnostic)

{markdown_table(metrics) if len(metrics) else "(not measured)"}

`held-out`: the test recordings of the annotated permissive sources. `unseen species`: zebra
finch (WhisperSeg example subset, research use, evaluation only). Every annotated permissive
recording is Bengalese finch, so the other taxa are all left out: the `partial boxes` rows are
field recordings of 17 Costa Rican frog species and of a bellbird with its neighbours (research
use, evaluation only) in which only some calls are boxed — there, only recall is meaningful
(an unboxed call that is found counts as a false alarm), and detections per minute show how busy
each detector is. `energy` is biomae's energy detector with its default settings on the same
recordings; `BirdNET V2.4` (when its venv is set up) is a species classifier of fixed 3-s windows,
merged into events (`biomae.detectors.birdnet`): it cannot match syllable-length calls at IoU 0.3,
so its zeros measure the protocol more than the model.

## Speed and size

{speed_and_size(info)}

## Known limits

- Real calls of one species only (Bengalese finch, lab recordings), widened by procedural calls:
  expect misses and false alarms on other taxa and in field noise; calls present in the
  unlabeled backgrounds were taught as background. Bats and other ultrasound need
  `--time-expansion` (input is resampled to 32 kHz: nothing above 16 kHz is seen).
- Class-agnostic: no species labels. Frequency boxes come from the energy in each detected span.
- Tiny model and few hours of data; the numbers above come from few recordings of few birds.
"""


def speed_and_size(info: dict) -> str:
    """The card's speed paragraph: size, FLOPs, and real-time factors from the evaluate stage."""
    size = info.get("size") or {}
    lines = []
    if size:
        lines.append(
            f"{size['parameters'] / 1e6:.2f}M parameters ({info['size_bytes'] / 2**20:.1f} MB, "
            f"fp32); the encoder costs {size['encoder_gflop_per_audio_s']:.2f} GFLOP per second of "
            f"audio at the annotate default of windows overlapping by {size['overlap']:g}."
        )
    totals: dict[str, list[float]] = {}
    for by_det in info["metrics"].values():
        for det, v in by_det.items():
            if "seconds" in v:
                total = totals.setdefault(det, [0.0, 0.0])
                total[0] += v["audio_s"]
                total[1] += v["seconds"]
    if totals:
        rates = ", ".join(f"{det} {a / max(t, 1e-9):.0f}x" for det, (a, t) in totals.items())
        lines.append(
            f"Real-time factors while scoring the recordings above (many short files, one "
            f"thread, {info['machine']}; BirdNET's includes its start-up once per set): {rates}. "
            "The README's `bench/bench_vs_birdnet.py` figures compare whole runs on long audio."
        )
    return "\n".join(lines) if lines else "(not measured)"
