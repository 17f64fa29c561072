"""``biomae embed PATH... --model M --out embeddings.parquet``: window- or event-level
embeddings. A missing, corrupt or foreign --model is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "embed",
        help="embeddings of recordings (per window or per event) for search and probes",
        description="Embed recordings with a biomae encoder: one row per window, or per event "
        "of the --events tables. Output: Parquet with recording, start_s, end_s, label, embedding.",
    )
    p.add_argument("inputs", nargs="+", metavar="PATH", help="audio files, folders or globs")
    p.add_argument(
        "--model",
        default=None,
        help="a model file, or 'detector' for the starter detector's encoder (default: the "
        "shipped species-aware embedding model)",
    )
    p.add_argument("--out", required=True, help="output .parquet")
    p.add_argument("--hop-s", type=float, default=None, help="seconds between windows")
    p.add_argument("--window-s", type=float, default=None, help="window length (default: model's)")
    p.add_argument(
        "--events",
        default=None,
        help="folder of event tables (as written by biomae annotate) for event-level rows",
    )
    p.add_argument(
        "--events-format", default="raven", help="format of the --events tables (default raven)"
    )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu or cuda (default auto)"
    )
    p.add_argument(
        "--runtime",
        choices=["auto", "torch", "onnx"],
        default="auto",
        help="what runs the encoder: auto (default) = ONNX Runtime when it is installed and it "
        "runs on the CPU (its graph exported once into a cache; no torch is loaded then), "
        "torch otherwise or with --window-s; onnx; torch (biomae.embed)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd
    from tqdm import tqdm

    # pandas: imported when used, so that `biomae --help` stays without it
    from biomae.annotate import find_recordings
    from biomae.annotations import format_module, read_annotations
    from biomae.embed import Embedder, write_embeddings

    try:  # a truncated or corrupt model file: one line naming it (biomae.models.files)
        embedder = Embedder(
            args.model, device=args.device, window_s=args.window_s, runtime=args.runtime
        )
        recordings = find_recordings(args.inputs)
    except (ValueError, FileNotFoundError) as err:
        print(f"biomae embed: {err}", file=sys.stderr)
        return 2
    tables, failed = [], 0
    bar = tqdm(recordings, desc="embed", unit="file", disable=args.no_progress or None)
    for rec in bar:
        try:
            if args.events:
                suffix = format_module(args.events_format).OUTPUT_SUFFIX
                table = Path(args.events) / (rec.key + suffix)
                tables.append(
                    embedder.embed_events(rec.path, read_annotations(table, args.events_format))
                )
            else:
                tables.append(embedder.embed_windows(rec.path, hop_s=args.hop_s))
        except Exception as err:  # reported and skipped, like annotate
            failed += 1
            bar.write(f"biomae embed: skipped {rec.path}: {type(err).__name__}: {err}", sys.stderr)
    frame = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["recording", "start_s", "end_s", "label", "embedding"])
    )
    write_embeddings(frame, args.out, embedder.model_path)
    print(
        f"{len(frame)} embeddings of dimension {embedder.dim} from {len(recordings) - failed} "
        f"recording(s) -> {args.out}" + (f"; {failed} skipped" if failed else "")
    )
    return 1 if failed and not tables else 0
