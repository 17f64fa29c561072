"""biomae evaluate: score prediction tables against reference tables, no model needed.

    biomae evaluate --pred birdnet/ --ref human/ --match-labels --label-map map.csv --out eval/

Files are paired by recording name (see :mod:`biomae.evaluate.tables`; a ``biomae annotate`` output
folder is read once, from its per-recording tables); the results are written as described in
:mod:`biomae.evaluate.report`. ``--model M --suite S`` hands over to the benchmark
suites of ``biomae.evaluate.benchmarks`` (its ``run(model=, suite=, out_dir=) -> int``).
``--embeddings DIR`` probes embeddings of labelled clips instead
(:func:`biomae.evaluate.embedding_probe.run_probe`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score prediction tables against reference tables (event/frame F1, AP)",
        description="Score prediction tables against reference tables (no model needed), pairing "
        "files by recording name; a `biomae annotate` output folder can be given as --pred. With "
        "--model and --suite, score a model on a benchmark suite instead.",
    )
    p.add_argument(
        "--pred", type=Path,
        help="prediction file or folder (a `biomae annotate` output folder is read once)",
    )  # fmt: skip
    p.add_argument("--ref", type=Path, help="reference (ground-truth) file or folder")
    p.add_argument("--pred-format", help="format of the predictions (default: guessed per file)")
    p.add_argument("--ref-format", help="format of the references (default: guessed per file)")
    for side in ("pred", "ref"):
        p.add_argument(
            f"--{side}-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"option for the {side} reader, e.g. label_column='Common Name' (repeatable)",
        )
    p.add_argument(
        "--lenient", action="store_true",
        help="skip malformed rows of either side's tables (each listed) instead of stopping",
    )  # fmt: skip
    p.add_argument("--iou", type=float, default=0.3, help="IoU threshold of a match (default 0.3)")
    p.add_argument("--match-labels", action="store_true", help="a match needs equal labels")
    p.add_argument("--use-frequency", action="store_true", help="time-frequency box IoU")
    p.add_argument("--collar-s", type=float, default=0.2, help="onset collar, s (default 0.2)")
    p.add_argument(
        "--offset-fraction", type=float, default=0.2, help="offset collar / ref length (0.2)"
    )
    p.add_argument("--frame-s", type=float, default=0.01, help="frame length of frame F1, s")
    p.add_argument("--label-map", type=Path, help="CSV 'from,to' applied to both sides' labels")
    p.add_argument("--regions", type=Path, help="CSV 'recording,start_s,end_s' of annotated spans")
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR",
        help="output folder for metrics.csv, metrics.json, per_recording.csv and the PR curve",
    )  # fmt: skip
    p.add_argument(
        "--model",
        help="score a model on a benchmark suite instead of tables: a model file, auto (the "
        "annotate default), starter, energy or birdnet",
    )
    p.add_argument(
        "--suite", help="benchmark suite for --model: dev, synth, seed, embeddings, leave-taxa-out"
    )
    p.add_argument(
        "--data-root",
        type=Path,
        help="suite data: seed = folder of datasets; the others = the shared data folder",
    )
    p.add_argument(
        "--embeddings", metavar="DIR",
        help="probe embeddings of labelled clips instead: DIR/<label>/*.wav (or 'shared': the "
        "shared data's clip sets; 'heldout': the embedding model's held-out species, needs "
        "--sources-root); leave-one-out 1-NN and linear probe for the model (--model, default "
        "the shipped embedding model), the detector's encoder, log-mel statistics and BirdNET "
        "(when its environment is set up); writes embeddings.csv/.json/.md under --out",
    )  # fmt: skip
    p.add_argument("--sources-root", type=Path, help="--embeddings heldout: the public sources")
    p.add_argument(
        "--no-birdnet", action="store_true", help="--embeddings: leave the BirdNET baseline out"
    )
    p.add_argument("--max-recordings", type=int, help="score at most N recordings (dev/synth/seed)")
    p.add_argument("--split", help="dev suite: test (default), val, train or all")
    p.set_defaults(run=run)


def _options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise ValueError(f"reader option {item!r} must look like KEY=VALUE")
        options[key] = value
    return options


def _run_suite(args) -> int:
    if not args.suite:
        print("biomae evaluate: --model needs --suite", file=sys.stderr)
        return 2
    # pandas: imported when used, so that `biomae --help` stays without it
    from biomae.evaluate import benchmarks

    names = (
        ("data_root", args.data_root),
        ("max_recordings", args.max_recordings),
        ("split", args.split),
    )
    options = {k: v for k, v in names if v is not None}
    return int(benchmarks.run(model=args.model, suite=args.suite, out_dir=args.out, **options) or 0)


def _run_embeddings(args) -> int:
    # torch and pandas: imported when used, so that `biomae --help` stays without them
    from biomae.evaluate.embedding_probe import run_probe

    models = (args.model or "embedding", "detector")
    try:
        report = run_probe(
            args.embeddings,
            args.out,
            models=tuple(dict.fromkeys(models)),
            data_root=args.data_root,
            sources_root=args.sources_root,
            birdnet=not args.no_birdnet,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"biomae evaluate: {err}", file=sys.stderr)
        return 2
    print((Path(args.out) / "embeddings.md").read_text(), end="")
    n_rows = len(report["rows"])
    print(f"wrote {args.out}/embeddings.csv, embeddings.json, embeddings.md ({n_rows} rows)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.embeddings:
        return _run_embeddings(args)
    if args.model:
        return _run_suite(args)
    if args.pred is None or args.ref is None:
        print(
            "biomae evaluate: give --pred and --ref (or --model and --suite)",
            file=sys.stderr,
        )
        return 2
    # pandas: imported when used, so that `biomae --help` stays without it
    from biomae.annotations import lenient_reading
    from biomae.evaluate import tables
    from biomae.evaluate.report import score_tables, write_report
    from biomae.metrics.events import MatchConfig

    try:
        config = MatchConfig(
            iou_threshold=args.iou,
            match_labels=args.match_labels,
            use_frequency=args.use_frequency,
            t_collar_s=args.collar_s,
            offset_fraction=args.offset_fraction,
            frame_s=args.frame_s,
        )
        lenient = lenient_reading() if args.lenient else contextlib.nullcontext([])
        with lenient as bad_rows, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*\(lenient=True\)")  # listed below
            ref = tables.read_tables(args.ref, args.ref_format, _options(args.ref_option))
            pred = tables.read_tables(args.pred, args.pred_format, _options(args.pred_option))
        pred = tables.pair_single(pred, ref)
        pred_events, ref_events = pred.events, ref.events
        if args.label_map:
            mapping = tables.read_label_map(args.label_map)
            pred_events = tables.apply_label_map(pred_events, mapping)
            ref_events = tables.apply_label_map(ref_events, mapping)
        regions = tables.read_regions(args.regions) if args.regions else None
        report = score_tables(
            pred_events,
            ref_events,
            config,
            recordings=ref.recordings,
            pred_recordings=pred.recordings,
            regions=regions,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"biomae evaluate: {err}", file=sys.stderr)
        return 2
    report.notes += [f"skipped {s}" for s in pred.skipped + ref.skipped + bad_rows]
    for row in bad_rows:
        print(f"skipped {row}", file=sys.stderr)
    report.inputs = {
        "pred": str(args.pred),
        "ref": str(args.ref),
        "pred_files": len(pred.files),
        "ref_files": len(ref.files),
        "recordings": len(ref.recordings),
    }
    written = write_report(report, args.out)
    overall = report.scores["event_iou"].overall
    line = (
        f"event F1 {overall.f1:.3f} (P {overall.precision:.3f}, R {overall.recall:.3f}; "
        f"tp {overall.tp}, fp {overall.fp}, fn {overall.fn}) at IoU >= {config.iou_threshold:g}"
    )
    if report.ap is not None:
        line += f"; AP {report.ap.overall.ap:.3f}"
    print(line)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
