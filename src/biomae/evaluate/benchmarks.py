"""Benchmark suites: score a model on fixed data with fixed protocols (``biomae evaluate --model``).

    biomae evaluate --model best.safetensors --suite dev --out eval/dev
    biomae evaluate --model energy --suite synth --out eval/synth

``run(model, suite, out_dir, **options)`` scores one model on one suite and returns an exit status
(0 done, 2 bad input, 3 skipped: the model or every dataset is unavailable, with the reason
printed). The ``model`` is

- ``auto``: ``biomae annotate``'s default (the starter model behind the noise-floor gate,
  :mod:`biomae.detectors.gate`); ``starter``: the starter model alone;
- a fine-tuned detection model (``best.safetensors`` of ``biomae finetune --task detect``), run
  through :class:`biomae.detectors.model.ModelDetector` (no frequency boxes; they are not scored);
- ``energy``: the band-energy detector baseline (:class:`biomae.detectors.energy.EnergyDetector`);
- ``birdnet``: BirdNET V2.4 from the peers venv, its 3-s windows merged into class-agnostic events
  (:mod:`biomae.detectors.birdnet`); skipped with a message when the venv is absent;
- for the ``embeddings`` suite: an encoder or fine-tuned model path, or ``logmel`` (the baseline);
- from Python, any object with ``detect_file(path) -> events`` (tests use an oracle).

Every detector is scored by the same code, :func:`score_detection`: class-agnostic event F1 at IoU
>= 0.3 (:mod:`biomae.metrics.events`, one-to-one matching), onset/offset F1 (collar 0.2 s, offset
collar 20 % of the reference length), frame F1 and, when every prediction has a score, AP — only
inside each recording's annotated regions. Per scope (each source, and ``all``) a folder holds
:func:`biomae.evaluate.report.write_report`'s files (metrics.csv/json, per_recording.csv, PR
curves); ``summary.csv`` and ``summary.json`` in ``out_dir`` hold one row per scope. All files are
written atomically.

Suites (:data:`SUITES`):

- ``dev``: the fully annotated real recordings of the shared data folder (``data_root``, default
  ``../shared/data``): koumura_bird0, bfsongrepo, whisperseg (Bengalese and zebra finch song).
  Each source's recordings are split 80/10/10 % of duration by recording
  (:func:`biomae.datasets.splits.assign_splits` with ``by=()``, ``seed=0``); the ``test`` split
  is scored (``split="all"`` scores every recording). ``summary.json`` lists the recordings.
  Caveat: koumura_bird0 is one bird, and whisperseg's Bengalese files are cut from bfsongrepo's
  bl26lb16 recordings, so a model trained on the train split has heard these individuals.
- ``synth``: ``n_soundscapes`` (default 4) soundscapes of ``duration_s`` (30 s) built by
  :mod:`biomae.datasets.synth` from the call snippets of the ``dev`` suite's test recordings on
  night-time backgrounds of scikit-maad_indices (00:00-02:45; unlisted calls in a background count
  as false positives), seeded by ``seed``; written under ``out_dir/soundscapes`` and scored as
  ``dev``.
- ``seed``: the seed paper's zero-shot benchmarks from local copies (:mod:`.seed_suite`).
- ``leave-taxa-out``: taxa and sources held out of all training (:mod:`.leave_taxa_out`).
- ``embeddings``: few-shot classification of clip-labelled sets from embeddings
  (:mod:`.embedding_suite`).

Options (keyword arguments): ``data_root``, ``split``, ``seed``, ``max_recordings`` (a subset: the
first recordings by path, taken in turn from each source), ``n_soundscapes``, ``duration_s``,
``birdnet_threshold`` (0.1), ``iou`` (0.3); the seed and embeddings suites document their own.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from biomae import audio as audio_io
from biomae.annotations import read_annotations
from biomae.annotations.schema import concat_events, empty_events
from biomae.atomic_io import atomic_open, atomic_write_text
from biomae.detectors import make_detector
from biomae.detectors.birdnet import BirdNETUnavailable
from biomae.evaluate.report import json_safe, score_tables, write_report
from biomae.metrics.events import MatchConfig

REPO = Path(__file__).resolve().parents[3]
DEFAULT_DATA_ROOT = Path(os.environ.get("BIOMAE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEV_SOURCES = ("koumura_bird0", "bfsongrepo", "whisperseg")
NIGHT_BACKGROUNDS = "audio/scikit-maad/data/indices/S4A03895_20190522_0[0-2]*.flac"
SUMMARY_COLUMNS = [
    "scope",
    "n_recordings",
    "n_ref",
    "n_pred",
    "event_f1",
    "precision",
    "recall",
    "onset_offset_f1",
    "frame_f1",
    "ap",
]


class Skipped(RuntimeError):
    """The suite cannot run here (a model or data set is unavailable); the message says why."""


@dataclass(frozen=True)
class Suite:
    """A registered benchmark suite.

    Attributes:
        name: the ``--suite`` key.
        summary: one line on data, protocol and what is scored (details in the module docs).
        target: ``"module:function"``, imported when the suite runs: ``function(model, out_dir,
            **options) -> dict`` writes the suite's files and returns the summary.
    """

    name: str
    summary: str
    target: str

    def load(self) -> Callable[..., dict]:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


def run(model, suite: str, out_dir: str | Path, **options) -> int:
    """Score ``model`` on ``suite``, write the results into ``out_dir`` and print the summary.

    Returns:
        0 when scored, 2 for an unknown suite or bad input, 3 when skipped (reason printed).
    """
    if suite not in SUITES:
        print(
            f"biomae evaluate: unknown suite {suite!r}; known: {', '.join(SUITES)}", file=sys.stderr
        )
        return 2
    function = SUITES[suite].load()
    accepted = [n for n in inspect.signature(function).parameters if n not in ("model", "out_dir")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        print(
            f"biomae evaluate: suite {suite} has no option(s) {unknown}; it takes {accepted}",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        summary = function(model, out_dir, **options)
    except Skipped as err:
        print(f"biomae evaluate: suite {suite} skipped: {err}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as err:
        print(f"biomae evaluate: suite {suite}: {err}", file=sys.stderr)
        return 2
    write_summary(summary, out_dir)
    print_summary(summary)
    return 0


# ---- detectors ------------------------------------------------------------------------------


def load_detector(model, *, birdnet_threshold: float = 0.1):
    """The detector a ``model`` argument names (see the module docstring).

    Raises:
        Skipped: ``birdnet`` without its venv.
        FileNotFoundError: a path that does not exist (naming the special names too).
    """

    if hasattr(model, "detect_file"):
        return model
    if model in ("auto", "starter"):  # the default of `biomae annotate`, gated, or the bare model
        detector, path = ("auto", None) if model == "auto" else ("model", "starter")
        return make_detector(detector, path, model_options={"boxes": False})
    if model in ("energy", "birdnet"):
        try:
            options = {"threshold": birdnet_threshold} if model == "birdnet" else None
            return make_detector(model, birdnet_options=options)
        except BirdNETUnavailable as err:
            raise Skipped(str(err)) from err
    if not Path(model).is_file():
        raise FileNotFoundError(
            f"model {model!r} is neither a file nor one of the names auto, starter, energy, birdnet"
        )
    return make_detector("model", model, model_options={"boxes": False})


def model_name(model) -> str:
    """How a model argument is named in the summary."""
    if hasattr(model, "detect_file"):
        return str(getattr(model, "name", type(model).__name__))
    return str(model)


def predict(detector, paths: list[str]) -> pd.DataFrame:
    """Events of every recording (``recording`` = its path), one file at a time (or one batch)."""

    if not paths:
        return empty_events()
    if hasattr(detector, "detect_files"):
        return detector.detect_files(paths)
    tables = []
    for i, path in enumerate(paths):
        print(f"  [{i + 1}/{len(paths)}] {Path(path).name}", file=sys.stderr, flush=True)
        tables.append(detector.detect_file(path, recording=path))
    return concat_events(tables)


# ---- scoring ----------------------------------------------------------------------------------


def recording_regions(recordings: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Annotated spans per recording path: the ``regions`` column, else the whole file."""

    regions = {}
    for row in recordings.itertuples(index=False):
        spans = getattr(row, "regions", None)
        if spans is None or (not isinstance(spans, str) and len(spans) == 0):
            spans = [(0.0, audio_io.info(row.path).duration_s)]
        regions[row.path] = [(float(a), float(b)) for a, b in spans]
    return regions


def score_detection(
    detector, recordings: pd.DataFrame, references: pd.DataFrame, out_dir: Path, *, iou=0.3
) -> tuple[list[dict], pd.DataFrame]:
    """Run ``detector`` on ``recordings`` (``path``, ``source``, optional ``regions``) and score it.

    Writes a report per source and for ``all`` under ``out_dir``; returns the summary rows and the
    predictions.
    """

    config = MatchConfig(iou_threshold=iou, match_labels=False)
    paths = recordings["path"].tolist()
    predictions = predict(detector, paths)
    regions = recording_regions(recordings)
    scopes = [(s, recordings[recordings["source"] == s]) for s in sorted(set(recordings["source"]))]
    if len(scopes) > 1:
        scopes.append(("all", recordings))
    rows = []
    for scope, members in scopes:
        names = members["path"].tolist()
        pred = predictions[predictions["recording"].isin(names)].reset_index(drop=True)
        ref = references[references["recording"].isin(names)].reset_index(drop=True)
        report = score_tables(
            pred, ref, config, recordings=names, pred_recordings=names, regions=regions
        )
        report.inputs = {"scope": scope, "recordings": names}
        write_report(report, out_dir / scope)
        rows.append(_summary_row(scope, report))
    return rows, predictions


def _summary_row(scope: str, report) -> dict:
    event = report.scores["event_iou"].overall
    return {
        "scope": scope,
        "n_recordings": len(report.per_recording),
        "n_ref": int(report.per_recording["n_ref"].sum()),
        "n_pred": int(report.per_recording["n_pred"].sum()),
        "event_f1": event.f1,
        "precision": event.precision,
        "recall": event.recall,
        "onset_offset_f1": report.scores["onset_offset"].overall.f1,
        "frame_f1": report.scores["frame"].overall.f1,
        "ap": None if report.ap is None else report.ap.overall.ap,
    }


def write_summary(summary: dict, out_dir: Path) -> None:
    """``summary.csv`` (the rows) and ``summary.json`` (everything), atomically."""

    table = pd.DataFrame(summary["rows"])
    with atomic_open(out_dir / "summary.csv") as handle:
        table.to_csv(handle, index=False)
    atomic_write_text(out_dir / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")


def print_summary(summary: dict) -> None:
    print(f"suite {summary['suite']}, model {summary['model']}")
    table = pd.DataFrame(summary["rows"])
    if len(table):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"))
    for note in summary.get("notes", []):
        print(f"note: {note}")


# ---- the dev and synth suites ---------------------------------------------------------------


def dev_recordings(
    data_root: str | Path = DEFAULT_DATA_ROOT,
    *,
    split: str = "test",
    seed: int = 0,
    max_recordings: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dev suite's recordings (path, source, regions, duration_s, split) and their events."""
    # the datasets: imported when used, so that `import biomae.evaluate.benchmarks` stays without it
    from biomae.datasets.registry import get_adapter
    from biomae.datasets.splits import assign_splits

    data_root = Path(data_root)
    if not (data_root / "index" / "files.csv").is_file():
        raise Skipped(f"shared data folder {data_root} (index/files.csv) not found")
    recordings, events = get_adapter("shared").load(data_root)
    keep = recordings["source"].isin(DEV_SOURCES) & (recordings["annotation"] == "full")
    recordings = recordings[keep].sort_values("path").reset_index(drop=True)
    recordings["duration_s"] = [audio_io.info(p).duration_s for p in recordings["path"]]
    recordings["recording_id"] = recordings["path"]
    recordings["dataset"] = recordings["source"]
    recordings["split"] = ""
    for _, members in recordings.groupby("source"):
        recordings.loc[members.index, "split"] = assign_splits(members, seed=seed, by=())
    if split != "all":
        if split not in set(recordings["split"]):
            raise ValueError(f"split {split!r} is not one of train, val, test, all")
        recordings = recordings[recordings["split"] == split].reset_index(drop=True)
    recordings = _subset(recordings, max_recordings)
    return recordings, events[events["recording"].isin(recordings["path"])].reset_index(drop=True)


def _subset(recordings: pd.DataFrame, max_recordings: int | None) -> pd.DataFrame:
    """The first ``max_recordings`` by path, taken in turn from each source (None keeps all)."""
    if max_recordings is None or max_recordings >= len(recordings):
        return recordings
    if max_recordings < 1:
        raise ValueError(f"max_recordings={max_recordings} must be >= 1")
    rank = recordings.groupby("source").cumcount()
    order = recordings.assign(_rank=rank).sort_values(["_rank", "source", "path"])
    return (
        order.head(max_recordings).drop(columns="_rank").sort_values("path").reset_index(drop=True)
    )


def _detection_summary(suite: str, model, rows: list[dict], recordings, notes=()) -> dict:
    return {
        "suite": suite,
        "model": model_name(model),
        "protocol": "class-agnostic event F1 at IoU >= 0.3 inside annotated regions",
        "rows": rows,
        "recordings": recordings,
        "notes": list(notes),
    }


def run_dev(
    model,
    out_dir: Path,
    *,
    data_root=DEFAULT_DATA_ROOT,
    split="test",
    seed=0,
    max_recordings=None,
    iou=0.3,
    birdnet_threshold=0.1,
) -> dict:
    """The ``dev`` suite (module docstring)."""
    detector = load_detector(model, birdnet_threshold=birdnet_threshold)
    recordings, events = dev_recordings(
        data_root, split=split, seed=seed, max_recordings=max_recordings
    )
    rows, _ = score_detection(detector, recordings, events, out_dir, iou=iou)
    listed = recordings[["path", "source", "split", "duration_s"]].to_dict("records")
    return _detection_summary("dev", model, rows, listed)


def run_synth(
    model,
    out_dir: Path,
    *,
    data_root=DEFAULT_DATA_ROOT,
    seed=0,
    n_soundscapes=4,
    duration_s=30.0,
    iou=0.3,
    birdnet_threshold=0.1,
    max_recordings=None,
) -> dict:
    """The ``synth`` suite (module docstring); ``max_recordings`` caps the soundscapes too."""
    # the datasets: imported when used, so that `import biomae.evaluate.benchmarks` stays without it
    from biomae.datasets.synth import SynthConfig, write_soundscapes

    detector = load_detector(model, birdnet_threshold=birdnet_threshold)
    data_root = Path(data_root)
    sources, _ = dev_recordings(data_root, seed=seed)
    index = pd.read_csv(data_root / "index" / "events.csv", dtype=str, keep_default_na=False)
    # compare resolved paths: the adapter resolves symlinks (e.g. a linked shared/ folder)
    test_paths = {str(Path(p).resolve()) for p in sources["path"]}
    index = index[[str((data_root / f).resolve()) in test_paths for f in index["file"]]]
    work = out_dir / "soundscapes"
    work.mkdir(parents=True, exist_ok=True)
    with atomic_open(work / "source_events.csv") as handle:
        index.to_csv(handle, index=False)
    n = n_soundscapes if max_recordings is None else min(n_soundscapes, max_recordings)
    config = SynthConfig(
        duration_s=duration_s,
        sample_rate=32000,
        density_per_min=30.0,
        events_path=str(work / "source_events.csv"),
        audio_root=str(data_root),
        backgrounds=(str(data_root / NIGHT_BACKGROUNDS),),
        max_snippets=300,
        max_backgrounds=12,
    )
    write_soundscapes(config, work, n=n, seed=seed)
    paths = [str(work / f"soundscape_{i:04d}.flac") for i in range(n)]
    references = pd.concat(
        [read_annotations(Path(p).with_suffix(".csv"), "csv").assign(recording=p) for p in paths],
        ignore_index=True,
    )
    recordings = pd.DataFrame({"path": paths, "source": "synth"})
    rows, _ = score_detection(detector, recordings, references, out_dir, iou=iou)
    notes = [f"snippets from the dev suite's {len(sources)} test recordings; seed {seed}"]
    return _detection_summary("synth", model, rows, paths, notes)


_ME = __name__
SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("dev", "real finch song, test split by recording, event F1", f"{_ME}:run_dev"),
        Suite("synth", "seeded synthetic soundscapes of test-split calls", f"{_ME}:run_synth"),
        Suite("seed", "the seed paper's zero-shot datasets", "biomae.evaluate.seed_suite:run_seed"),
        Suite(
            "embeddings",
            "1-NN and linear-probe accuracy on clip-labelled sets",
            "biomae.evaluate.embedding_suite:run_embeddings",
        ),
        Suite(
            "leave-taxa-out",
            "taxa held out of all training: event F1 / field recall per group",
            "biomae.evaluate.leave_taxa_out:run_leave_taxa_out",
        ),
    )
}
