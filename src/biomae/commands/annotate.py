"""``biomae annotate PATH... --out DIR``: find every call in folders of recordings.

Exit codes: see :data:`EXIT_CODES` (shown by ``biomae annotate --help``).
"""

from __future__ import annotations

import argparse
import sys

# Options every detector applies the same way, as biomae.detectors.postprocess.PostProcess field
# names (make_detector's ``shared``); the command-line default None means "not given".
SHARED_OPTIONS = ("low_hz", "high_hz", "merge_gap_s", "min_duration_s", "label")
ENERGY_OPTIONS = ("on_db", "off_db", "denoise")  # only with --detector energy
MODEL_OPTIONS = (
    "overlap",
    "batch_size",
    "device",
    "workers",
    "bf16",
    "time_expansion",
    "threshold",
    "runtime",
)

DESCRIPTION = """
Find calls in files, folders (searched recursively) and globs of recordings and write one table
per recording. Each event has a time span, a frequency box, a score and the label "call": the
default model detects calls of any animal without naming the species (a fine-tuned --model names
its own classes). A rerun skips recordings already done; unreadable files are listed in
errors.csv, and summary.csv names the detector that annotated each recording.

--low-hz/--high-hz, --merge-gap-s, --min-duration-s and --label mean the same for every detector:
events whose frequency box lies outside the band are dropped (the energy detector also searches
only inside it) and boxes are clipped to it; events of the same label at most --merge-gap-s apart
are joined; events shorter than --min-duration-s are dropped; --label is written on every event.
--on-db, --off-db and --denoise belong to the energy detector: they need --detector energy.
""".strip()


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
        description=DESCRIPTION,
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
        help="without --model: auto (default) = the starter model ($BIOMAE_STARTER_MODEL or the "
        "packaged one) for recordings sampled from ~4.8 kHz to 100 kHz, the energy detector "
        "below (the model would hear mostly empty bands) and above (ultrasound), and everywhere "
        "when no starter model is installed; energy = band energy above an adaptive noise floor "
        "on every recording",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="run this fine-tuned detection model (best.safetensors from biomae finetune --task "
        "detect) on every recording",
    )
    model = p.add_argument_group("model options (the model, not --detector energy)")
    model.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="windows' overlap, a fraction in [0, 1) (default 0; 0.5 costs twice the time for "
        "~0.5 F1 points)",
    )
    model.add_argument(
        "--batch-size", type=int, default=None, help="windows per batch (default 16)"
    )
    model.add_argument(
        "--device", default=None, help="auto (default: CUDA when available), cpu, cuda, cuda:N"
    )
    model.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes decoding recordings (default 0: one background thread)",
    )
    model.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default=None,
        help="bf16 autocast. auto (default) = on CUDA and on CPUs with AMX only, where it is "
        "faster with the same events; fp32 elsewhere (AVX512-BF16 without AMX is no faster and "
        "changes results)",
    )
    model.add_argument(
        "--time-expansion",
        type=float,
        default=None,
        help="play recordings this many times slower (ultrasonic recordings; default 1); auto "
        "routes by the rate so heard",
    )
    model.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="score in [0, 1] needed to start an event (default: the model's)",
    )
    model.add_argument(
        "--runtime",
        choices=["auto", "torch", "onnx"],
        default=None,
        help="what runs the model: auto (default) = ONNX Runtime when it is installed and the "
        "model runs on the CPU in fp32 (the model's graph exported once into a cache, 20-40 s; "
        "no torch is loaded then), torch otherwise (GPU, bf16, no onnxruntime; "
        "$BIOMAE_RUNTIME=torch|onnx replaces this choice); onnx = ONNX Runtime always; torch "
        "= torch always. run.json records the one that ran (biomae.onnx_scorer)",
    )
    shared = p.add_argument_group("event options (every detector)")
    shared.add_argument(
        "--low-hz",
        type=float,
        default=None,
        help="drop events whose frequency box lies below this; clip boxes to it",
    )
    shared.add_argument(
        "--high-hz",
        type=float,
        default=None,
        help="drop events whose frequency box lies above this; clip boxes to it",
    )
    shared.add_argument(
        "--merge-gap-s",
        type=float,
        default=None,
        help="join events of one label at most this many seconds apart (default: the "
        "detector's: energy 0.05, 0.002 above 100 kHz; a model's own setting)",
    )
    shared.add_argument(
        "--min-duration-s",
        type=float,
        default=None,
        help="drop events shorter than this, after joining (default: the detector's: energy "
        "0.03, 0.001 above 100 kHz; a model's own setting)",
    )
    shared.add_argument("--label", default=None, help="label written on every event (default call)")
    energy = p.add_argument_group("energy detector options (need --detector energy)")
    energy.add_argument("--on-db", type=float, help="dB above the noise floor to start (default 8)")
    energy.add_argument(
        "--off-db", type=float, help="dB above the noise floor to go on (default 4)"
    )
    energy.add_argument(
        "--denoise",
        action="store_true",
        default=None,
        help="spectral-gating noise reduction before detection",
    )
    live = p.add_argument_group("live mode (biomae annotate - --live --out DIR)")
    live.add_argument(
        "--live",
        action="store_true",
        help="read a WAV or raw PCM stream on stdin (PATH: -), print each event as a JSON line "
        "as soon as it is decided, write the tables at EOF or Ctrl-C (biomae.live)",
    )
    live.add_argument("--sample-rate", type=int, help="raw PCM on stdin: samples per second")
    live.add_argument("--channels", type=int, help="raw PCM on stdin: channels (default 1)")
    live.add_argument(
        "--sample-format",
        choices=["s16le", "s32le", "f32le"],
        help="raw PCM on stdin: sample format (default s16le)",
    )
    live.add_argument("--name", default="stdin", help="the live recording's name (default stdin)")
    live.add_argument(
        "--live-hop-s",
        type=float,
        default=0.5,
        help="a model's live windows end every this many seconds, so an event is printed about "
        "0.5-1 s after it ends (default 0.5); 0: the file's windows, events equal to annotating "
        "the file, printed up to a window later",
    )
    # --- labels from examples and few-shot detection (biomae.examples, biomae.fewshot) ---
    labels = p.add_argument_group("labels from examples, few-shot detection")
    labels.add_argument(
        "--examples",
        default=None,
        metavar="DIR",
        help="label every event with the nearest class of DIR/<label>/ clips (or of recordings "
        "with Raven tables in DIR), 'unknown' below a similarity threshold calibrated on the "
        "examples by leave-one-out; adds a similarity column (biomae.examples)",
    )
    labels.add_argument(
        "--shots",
        default=None,
        metavar="TABLE",
        help="Raven/CSV table of the first (up to 5) events of one call type in the one "
        "recording given: find the rest of that call type; nothing before the end of the last "
        "shot is reported (DCASE few-shot rule; biomae.fewshot)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo recordings already done")
    p.add_argument(
        "--plots",
        action="store_true",
        help="also write spectrogram pictures with every call numbered",
    )
    p.add_argument("--page-s", type=float, default=30.0, help="seconds per picture (default 30)")
    p.add_argument(
        "--no-progress",
        "--quiet",
        dest="no_progress",
        action="store_true",
        help="no progress bar (--quiet is the same)",
    )
    p.set_defaults(run=run)


def _flags(names) -> str:
    return ", ".join(f"--{name.replace('_', '-')}" for name in names)


def build_detector(args: argparse.Namespace):
    """The detector the options ask for, or a ValueError naming the clash and the fix.

    ``--detector energy``: the energy detector. ``--model M``: M on every recording. Otherwise the
    ``auto`` detector (biomae.detectors.auto) with the starter model, or the energy detector when
    none is installed (:func:`biomae.detectors.make_detector` makes it). Shared options go to
    whichever runs; energy options need ``--detector energy``, model options a model.
    """
    # pandas: imported when used, so that `biomae --help` stays without it
    from biomae.detectors import make_detector

    def given(names) -> dict:
        return {n: getattr(args, n) for n in names if getattr(args, n) is not None}

    shared, energy_only, model_only = (
        given(SHARED_OPTIONS),
        given(ENERGY_OPTIONS),
        given(MODEL_OPTIONS),
    )
    if args.model and args.detector == "energy":
        raise ValueError("--model runs the model on every recording: drop --detector energy")
    if energy_only and args.detector != "energy":
        uses = f"--model {args.model}" if args.model else "the auto detector (the default)"
        raise ValueError(
            f"{_flags(energy_only)}: energy detector option(s), not for {uses}; add --detector "
            f"energy to run the energy detector on every recording"
        )
    if model_only and args.detector == "energy":
        raise ValueError(
            f"{_flags(model_only)}: model option(s), and --detector energy runs no model; drop "
            f"{'it' if len(model_only) == 1 else 'them'} or --detector energy"
        )
    # the given model options as InferConfig fields (the others keep InferConfig's defaults)
    renamed = {"workers": "num_workers", "threshold": "threshold_on"}
    options = {renamed.get(name, name): value for name, value in model_only.items()}
    if "bf16" in options:
        options["bf16"] = {"auto": None, "on": True, "off": False}[options["bf16"]]
    if args.detector == "energy":
        return make_detector("energy", shared=shared, energy_options=energy_only)
    detector = "model" if args.model else "auto"
    return make_detector(detector, args.model, shared=shared, model_options=options)


def run(args: argparse.Namespace) -> int:
    # pandas: imported when used, so that `biomae --help` stays without it
    from biomae.annotate import AnnotateConfig, OutputError, annotate

    try:
        config = AnnotateConfig(
            formats=[f.strip() for f in args.format.split(",") if f.strip()],
            overwrite=args.overwrite,
            plots=args.plots,
            page_s=args.page_s,
            progress=not args.no_progress,
        )
        detector = build_detector(args)
        if args.live or args.inputs == ["-"]:
            if args.examples or args.shots:
                raise ValueError("--examples and --shots need recordings, not --live")
            return _run_live(args, detector)
        from biomae.examples import wrap_detector  # --examples / --shots

        detector, note = wrap_detector(
            detector,
            args.inputs,
            examples=args.examples,
            shots=args.shots,
            device=args.device or "auto",
        )
        if note:
            print(note)
        summary = annotate(args.inputs, args.out, detector, config)
    except (ValueError, FileNotFoundError) as err:  # UsageError included
        print(f"biomae annotate: {err}", file=sys.stderr)
        return 2
    except OutputError as err:
        print(f"biomae annotate: {err}", file=sys.stderr)
        return 3
    return report(summary, args.out)


def _run_live(args: argparse.Namespace, detector) -> int:
    if not (args.live and args.inputs == ["-"]):
        raise ValueError("live mode reads stdin: give - as the only PATH, with --live")
    from biomae.live import run_live

    return run_live(args, detector)


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
