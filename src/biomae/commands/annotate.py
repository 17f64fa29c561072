"""``biomae annotate PATH... --out DIR``: find every call in folders of recordings.

Exit codes: see :data:`EXIT_CODES` (shown by ``biomae annotate --help``).
"""

from __future__ import annotations

import argparse
import sys

# options of the energy detector (EnergyDetectorConfig field names). Their command-line default is
# None, "not given": the config's own defaults apply, and a given one means the energy detector.
ENERGY_OPTIONS = (
    "low_hz",
    "high_hz",
    "on_db",
    "off_db",
    "min_duration_s",
    "merge_gap_s",
    "label",
    "denoise",
)


EXIT_CODES = """exit codes:
  0    every recording annotated
  1    some recording(s) failed (listed in OUT/errors.csv); the others are written
  2    usage error (bad option, no audio found, --out a file or not writable, results made with
       other settings in --out: rerun with --overwrite), nothing annotated
  3    an output could not be written (disk full, ...): the run stopped, what was written is kept
  130  interrupted (Ctrl-C): what was written is kept; rerun to resume
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "annotate",
        help="detect calls in recordings and write Raven/Audacity/CSV/Parquet tables",
        description="Annotate files, folders (searched recursively) and globs of recordings. "
        "A rerun skips recordings already done; unreadable files are listed in errors.csv.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="PATH", help="audio files, folders or globs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--format",
        default="raven",
        metavar="LIST",
        help="comma-separated: raven,audacity,csv,parquet,aoef (default raven)",
    )
    p.add_argument(
        "--detector",
        default="auto",
        choices=["auto", "energy"],
        help="without --model: auto = the starter model when one is installed "
        "($BIOMAE_STARTER_MODEL or the packaged one) for recordings sampled below 96 kHz and the "
        "energy detector for ultrasonic ones; energy = band energy above an adaptive noise floor "
        "everywhere (also chosen when any energy option such as --on-db is given)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="a fine-tuned detection model (best.safetensors from biomae finetune)",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="model windows' overlap (fraction; 0.5 costs twice the time for ~0.5 F1 points)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="model windows per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes decoding recordings for the model (default 0: one background thread)",
    )
    p.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default="auto",
        help="bf16 autocast: auto = on CUDA and CPUs with AMX/AVX512-BF16",
    )
    p.add_argument(
        "--time-expansion",
        type=float,
        default=1.0,
        help="play recordings this many times slower (ultrasonic recordings)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="model score needed to start an event (default: the model's)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo recordings already done")
    p.add_argument(
        "--plots",
        action="store_true",
        help="also write spectrogram pictures with every call numbered",
    )
    p.add_argument("--page-s", type=float, default=30.0, help="seconds per picture (default 30)")
    p.add_argument("--low-hz", type=float, default=None, help="lowest frequency searched")
    p.add_argument("--high-hz", type=float, default=None, help="highest frequency searched")
    p.add_argument("--on-db", type=float, help="dB above the noise floor to start (default 8)")
    p.add_argument("--off-db", type=float, help="dB above the noise floor to go on (default 4)")
    p.add_argument("--min-duration-s", type=float, default=None, help="shortest event kept")
    p.add_argument("--merge-gap-s", type=float, default=None, help="join events closer than this")
    p.add_argument("--label", help="label written on every event (default call)")
    p.add_argument(
        "--denoise",
        action="store_true",
        default=None,
        help="spectral-gating noise reduction before detection (energy detector)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from biomae.annotate import AnnotateConfig, OutputError, annotate
    from biomae.detectors.energy import EnergyDetector, EnergyDetectorConfig

    try:
        config = AnnotateConfig(
            formats=[f.strip() for f in args.format.split(",") if f.strip()],
            overwrite=args.overwrite,
            plots=args.plots,
            page_s=args.page_s,
            progress=not args.quiet,
        )
        model_path = args.model
        auto = model_path is None and args.detector == "auto"
        if auto:
            from biomae.starter import default_model

            model_path = default_model()
        given = {name: getattr(args, name) for name in ENERGY_OPTIONS}
        given = {name: value for name, value in given.items() if value is not None}
        energy_options = [f"--{name.replace('_', '-')}" for name in given]
        if model_path and energy_options and not auto:
            raise ValueError(
                f"{', '.join(energy_options)} apply to the energy detector, not --model"
            )
        if model_path and energy_options:  # auto, with energy settings given: the user means energy
            model_path = None
        energy = EnergyDetector(EnergyDetectorConfig(**given))
        detector = energy
        if model_path:
            from biomae.infer import InferConfig, ModelDetector

            detector = ModelDetector(
                model_path,
                InferConfig(
                    overlap=args.overlap,
                    batch_size=args.batch_size,
                    device=args.device,
                    bf16={"auto": None, "on": True, "off": False}[args.bf16],
                    time_expansion=args.time_expansion,
                    threshold_on=args.threshold,
                    num_workers=args.workers,
                ),
            )
            if auto:  # the starter model, with ultrasonic recordings left to the energy detector
                from biomae.detectors.auto import AutoDetector

                detector = AutoDetector(detector, energy)
        summary = annotate(args.inputs, args.out, detector, config)
    except (ValueError, FileNotFoundError) as err:  # UsageError included
        print(f"biomae annotate: {err}", file=sys.stderr)
        return 2
    except OutputError as err:
        print(f"biomae annotate: {err}", file=sys.stderr)
        return 3
    return report(summary, args.out)


def report(summary, out: str) -> int:
    """Print the run's summary; returns the exit code (0 all done, 1 some failed)."""
    done = summary["status"].eq("done")
    skipped = summary["skipped"].fillna(False).astype(bool)
    n_errors = int((~done).sum())
    n_warnings = int(summary["warning"].notna().sum())
    print(
        f"{int(done.sum())} recording(s) annotated ({int((done & skipped).sum())} already done), "
        f"{int(summary.loc[done, 'n_events'].sum())} events, {n_errors} error(s), "
        f"{n_warnings} warning(s) -> {out}"
    )
    by_detector = summary.loc[done, "detector"].fillna("?").value_counts()
    if len(by_detector):
        print("by detector: " + ", ".join(f"{name} {n}" for name, n in by_detector.items()))
    if n_warnings:
        print(f"warnings (truncated files, ...) are in the warning column of {out}/summary.csv")
    if n_errors:
        print(f"unreadable recordings are listed in {out}/errors.csv", file=sys.stderr)
    return 1 if n_errors else 0
