"""False alarms of the default detector: events per minute on audio without any animal.

    PYTHONPATH=src python bench/bench_false_alarms.py [--seconds 30] [--sources /work/data_sources]

Signals (32 kHz, float WAV, seed 0): white, pink and brown noise at −80 … −10 dBFS RMS in 10-dB
steps; digital silence; dithered silence (16-bit TPDF dither, about −101 dBFS); and the real
rain, wind and water recordings among the fetched public sources whose catalog role is
``negative`` (no animal; :data:`KINDS` picks and groups them by name: rain, wind, stream, other
water). Detectors:

- ``auto``: ``biomae annotate``'s default (:func:`biomae.detectors.make_detector`, the starter
  model behind the noise-floor gate of :mod:`biomae.detectors.gate`);
- ``ungated``: the same starter model without the gate (what ``auto`` was before it);
- ``energy``: the energy detector.

Prints events per minute per signal and detector (target: <= 1 for the default everywhere).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SAMPLE_RATE = 32000
LEVELS_DBFS = tuple(range(-80, 0, 10))
# kind of background -> its file names (``train.wav`` is not rain)
KINDS = {
    "rain": re.compile(r"(?<![a-z])rain|drip", re.IGNORECASE),
    "wind": re.compile(r"wind|snowstorm", re.IGNORECASE),
    "stream": re.compile(r"river|stream|waterfall", re.IGNORECASE),
    "other water": re.compile(r"water|wave|sea_", re.IGNORECASE),
}


def kind_of(name: str) -> str | None:
    """The background kind of a file name (the first of :data:`KINDS` that matches), or None."""
    return next((kind for kind, pattern in KINDS.items() if pattern.search(name)), None)


def synthetic_signals(out_dir: Path, seconds: float, seed: int = 0) -> list[tuple[str, Path]]:
    """``(name, path)`` of the generated call-free signals, written under ``out_dir``."""
    from biomae.datasets.synth.negatives import coloured_noise

    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    signals = {}
    for colour, alpha in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        for level in LEVELS_DBFS:
            signals[f"{colour} {level} dBFS"] = coloured_noise(n, alpha, rng) * 10 ** (level / 20)
    signals["digital silence"] = np.zeros(n)
    signals["dithered silence"] = (rng.random(n) - rng.random(n)) / 32768
    out = []
    for i, (name, audio) in enumerate(signals.items()):
        path = out_dir / f"signal_{i:02d}.wav"
        sf.write(path, audio.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
        out.append((name, path))
    return out


def real_negatives(root: Path) -> list[tuple[str, Path]]:
    """``(kind: source: file name, path)`` of the ``negative``-role recordings of rain, wind or
    water among the public sources fetched under ``root``."""
    import biomae.datasets.adapters_sources  # noqa: F401  (registers the adapters)
    from biomae.datasets.registry import get_adapter
    from biomae.datasets.sources import SOURCES

    out = []
    for source in SOURCES:
        folder = next((root / f for f in source.folders if (root / f).exists()), None)
        if folder is None:
            continue
        recordings, _ = get_adapter(source.dataset).load(folder)
        chosen = recordings[recordings["role"].eq("negative")]
        for path in sorted(chosen["path"]):
            kind = kind_of(Path(path).name)
            if kind is not None:
                out.append((f"{kind}: {source.dataset}: {Path(path).name}", Path(path)))
    return out


def detectors(names: list[str]) -> dict:
    from biomae.detectors import make_detector
    from biomae.detectors.auto import AutoDetector
    from biomae.detectors.energy import EnergyDetector
    from biomae.detectors.model import InferConfig, ModelDetector

    made = {}
    for name in names:
        if name == "auto":
            made[name] = make_detector("auto")
        elif name == "ungated":
            model = ModelDetector("starter", InferConfig(), name="starter-model")
            made[name] = AutoDetector(model, EnergyDetector())
        elif name == "energy":
            made[name] = make_detector("energy")
        else:
            raise SystemExit(f"unknown detector {name!r}: auto, ungated, energy")
    return made


def rates(signals: list[tuple[str, Path]], made: dict) -> pd.DataFrame:
    """Events per minute of each detector on each signal."""
    from biomae import audio as audio_io

    rows = []
    for name, path in signals:
        info = audio_io.info(path)
        row = {"signal": name, "minutes": info.duration_s / 60}
        for det_name, det in made.items():
            row[f"n_{det_name}"] = len(det.detect_file(path, info=info))
            row[det_name] = row[f"n_{det_name}"] / max(row["minutes"], 1e-9)
        rows.append(row)
        print(f"  {name}: " + ", ".join(f"{d} {row[d]:.1f}" for d in made), file=sys.stderr)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each signal")
    parser.add_argument("--sources", type=Path, default=Path("/work/data_sources"))
    parser.add_argument("--detectors", default="auto,ungated,energy")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    made = detectors(args.detectors.split(","))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        signals = synthetic_signals(Path(tmp), args.seconds)
        signals += real_negatives(args.sources) if args.sources.is_dir() else []
        table = rates(signals, made)
    names = list(made)
    pd.set_option("display.width", 200)
    print(f"events per minute ({len(table)} signals, {time.perf_counter() - started:.0f} s)")
    print(table[["signal", "minutes", *names]].to_string(index=False, float_format="{:.1f}".format))
    table["group"] = [s.split(":")[0] if ":" in s else "generated" for s in table["signal"]]
    groups = table.groupby("group", sort=False)[["minutes", *[f"n_{d}" for d in names]]].sum()
    for d in names:
        groups[d] = groups.pop(f"n_{d}") / groups["minutes"]
    print("\nper group (all events / all minutes):")
    print(groups.to_string(float_format="{:.1f}".format))
    worst = table[names].max()
    print("worst signal: " + ", ".join(f"{d} {worst[d]:.1f}/min" for d in names))
    over = {d: int((table[d] > 1.0).sum()) for d in names}
    print("signals over 1/min: " + ", ".join(f"{d} {n}" for d, n in over.items()))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
