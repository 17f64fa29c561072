"""Writing soundscapes to disk (FLAC, canonical CSV, Raven, manifest) and the CLI entry points."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from biomae.datasets.synth.place import SynthConfig, synthesize
from biomae.datasets.synth.sources import (
    catalog_backgrounds,
    cut_snippets,
    find_backgrounds,
    load_backgrounds,
    read_event_csv,
)

PEAK_LIMIT = 0.99


def write_soundscapes(config: SynthConfig, out_dir: str | Path, n: int, seed: int) -> Path:
    """Generate ``n`` soundscapes from ``config``'s sources into ``out_dir``; returns the manifest.

    Per soundscape ``soundscape_0000``: ``.flac`` (24-bit), ``.csv`` (canonical) and
    ``.selections.txt`` (Raven); then ``manifest.json`` with the config, seed, snippet counts,
    skipped events by reason, and per file the calls requested / placed and the gain applied.
    """
    from biomae.annotations import write_annotations
    from biomae.atomic_io import atomic_write_text
    from biomae.audio import save

    if n < 1:
        raise ValueError(f"write_soundscapes: n must be >= 1, got {n}")
    if config.catalog:
        from biomae.datasets.catalog import Catalog

        catalog = Catalog(config.catalog)
        events, audio_root, where = catalog.events(), "/", config.catalog
        if config.boundaries_only:
            recordings = catalog.recordings()
            clips = recordings.loc[recordings["annotation"] == "clip", "recording_id"]
            events = events[~events["recording_id"].isin(clips)]
    elif config.events_path and config.audio_root:
        events = read_event_csv(config.events_path)
        audio_root, where = config.audio_root, config.events_path
    elif config.procedural_calls > 0:
        events, audio_root, where = None, None, "procedural calls"
    else:
        raise ValueError(
            "write_soundscapes: config needs catalog, or events_path and audio_root, or "
            "procedural_calls > 0"
        )
    snippets, skipped = [], Counter()
    if events is not None:
        snippets, skipped = cut_snippets(
            events, audio_root, config, np.random.default_rng([seed, 0])
        )
    if config.procedural_calls:
        from biomae.datasets.synth.calls import procedural_snippets

        snippets += procedural_snippets(
            config.procedural_calls,
            config.sample_rate,
            np.random.default_rng([seed, 3]),
            margin_s=config.margin_s,
        )
    if not snippets:
        raise ValueError(f"{where}: no usable snippet (skipped: {dict(skipped)})")
    paths = find_backgrounds(config.backgrounds) if config.backgrounds else []
    if config.background_catalog:
        min_s = 2 * config.crossfade_s + 1 / config.sample_rate
        paths = sorted(
            set(paths)
            | set(catalog_backgrounds(config.background_catalog, config.background_roles, min_s))
        )
    backgrounds = load_backgrounds(paths, config, np.random.default_rng([seed, 1]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        audio, table = synthesize(
            config, snippets, backgrounds, np.random.default_rng([seed, 2, i])
        )
        name = f"soundscape_{i:04d}"
        peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
        gain = min(1.0, PEAK_LIMIT / peak) if peak > 0 else 1.0
        save(
            out_dir / f"{name}.flac", audio * np.float32(gain), config.sample_rate, subtype="PCM_24"
        )
        table["recording"] = f"{name}.flac"
        write_annotations(table, out_dir / f"{name}.csv", "csv")
        write_annotations(
            table, out_dir / f"{name}.selections.txt", "raven", sample_rate=config.sample_rate
        )
        files.append(
            {"audio": f"{name}.flac", **table.attrs["synth"], "gain_db": 20 * math.log10(gain)}
        )
    manifest = {
        "config": asdict(config),
        "seed": seed,
        "n": n,
        "snippets_per_label": dict(sorted(Counter(s.label for s in snippets).items())),
        "skipped_events": dict(skipped),
        "backgrounds": [str(p) for p in paths],
        "files": files,
    }
    manifest_path = out_dir / "manifest.json"
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest_path


def add_arguments(parser) -> None:
    """Options of ``biomae data synth`` (an :class:`argparse.ArgumentParser` or subparser)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", help="event CSV (index/events.csv style or canonical)")
    source.add_argument("--catalog", help="catalog folder (biomae data import) to take events from")
    parser.add_argument("--audio-root", help="folder the --events file paths are relative to")
    parser.add_argument(
        "--backgrounds", nargs="*", default=[], help="folders or globs of backgrounds"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, default=20, help="number of soundscapes")
    parser.add_argument(
        "--duration-s", type=float, default=60.0, help="length of each soundscape, s (default 60)"
    )
    parser.add_argument(
        "--sample-rate", type=int, default=32000, help="output sample rate, Hz (default 32000)"
    )
    parser.add_argument(
        "--density-per-min", type=float, default=20.0, help="calls placed per minute (default 20)"
    )
    parser.add_argument(
        "--snr-db", type=float, nargs=2, default=(-5.0, 20.0), metavar=("LOW", "HIGH"),
        help="each call's signal-to-noise ratio is drawn from [LOW, HIGH] dB (default -5 20)",
    )  # fmt: skip
    parser.add_argument(
        "--overlap", type=float, default=0.2, help="probability of overlapping a call"
    )
    parser.add_argument("--sources", nargs="*", default=[], help="keep events of these sources")
    parser.add_argument("--labels", nargs="*", default=[], help="keep events with these labels")
    parser.add_argument(
        "--label-weights",
        nargs="*",
        default=[],
        metavar="LABEL=W",
        help="species mix, e.g. a=2 b=1",
    )
    parser.add_argument(
        "--margin-s", type=float, default=0.02,
        help="audio kept around each call's annotated span when it is cut out, s (default 0.02)",
    )  # fmt: skip
    parser.add_argument(
        "--max-snippets", type=int, default=500, help="call snippets loaded at most (default 500)"
    )
    parser.add_argument(
        "--max-backgrounds", type=int, default=50,
        help="background recordings loaded at most (default 50)",
    )  # fmt: skip
    parser.add_argument(
        "--procedural", type=int, default=0, metavar="N", help="add N generated calls to the pool"
    )
    parser.add_argument(
        "--noise-backgrounds",
        type=float,
        default=0.0,
        metavar="P",
        help="probability of a generated coloured-noise background",
    )
    parser.add_argument(
        "--background-catalog", metavar="DIR",
        help="also take backgrounds from this catalog's recordings of --background-roles",
    )  # fmt: skip
    parser.add_argument(
        "--background-roles", nargs="+", default=["background", "negative"], metavar="ROLE",
        help="roles of --background-catalog recordings used as backgrounds "
        "(default: background negative)",
    )  # fmt: skip
    parser.add_argument(
        "--boundaries-only", action="store_true",
        help="with --catalog: skip the whole-clip events of recordings still labelled per clip "
        "(run `biomae data derive` first to give clean clips boundaries)",
    )  # fmt: skip
    parser.add_argument(
        "--negatives", type=float, default=0.0, metavar="P",
        help="probability of a hard-negative soundscape: generated noise (-80 to -10 dBFS), "
        "dithered silence, handling clicks or rain-like impulses, with no call and an empty table",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed: the same seed gives the same soundscapes"
    )


def run(args) -> int:
    """Run ``biomae data synth`` from parsed ``args`` (see :func:`add_arguments`).

    Returns 0, or 2 after printing the reason to stderr when the inputs are unusable.
    """
    try:
        if not (args.events or args.catalog or args.procedural):
            raise ValueError("give --events, --catalog or --procedural N (the calls to place)")
        if args.events and not args.audio_root:
            raise ValueError("--events needs --audio-root (the folder its file paths start from)")
        config = _config_from_args(args)
        manifest_path = write_soundscapes(config, args.out, args.n, args.seed)
    except (ValueError, FileNotFoundError) as error:
        print(f"biomae data synth: {error}", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    n_calls = sum(f["n_placed"] for f in manifest["files"])
    n_negative = sum(bool(f["negative"]) for f in manifest["files"])
    print(
        f"wrote {args.n} soundscapes ({n_negative} hard negatives) with {n_calls} calls to "
        f"{args.out} (manifest {manifest_path})"
    )
    return 0


def _config_from_args(args) -> SynthConfig:
    weights = {}
    for item in args.label_weights:
        label, sep, value = item.rpartition("=")
        if not sep or not label:
            raise ValueError(f"--label-weights: expected LABEL=WEIGHT, got {item!r}")
        weights[label] = float(value)
    return SynthConfig(
        duration_s=args.duration_s,
        sample_rate=args.sample_rate,
        density_per_min=args.density_per_min,
        overlap=args.overlap,
        snr_db=tuple(args.snr_db),
        label_weights=weights or None,
        margin_s=args.margin_s,
        events_path=args.events,
        audio_root=args.audio_root,
        catalog=args.catalog,
        backgrounds=tuple(args.backgrounds),
        sources=tuple(args.sources),
        labels=tuple(args.labels),
        max_snippets=args.max_snippets,
        max_backgrounds=args.max_backgrounds,
        procedural_calls=args.procedural,
        noise_background_prob=args.noise_backgrounds,
        negative_prob=args.negatives,
        background_catalog=args.background_catalog,
        background_roles=tuple(args.background_roles),
        boundaries_only=args.boundaries_only,
    )
