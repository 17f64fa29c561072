"""Run BirdNET V2.4 (TFLite, offline) on audio files; runs in the peers' own venv, not biomae's.

BirdNET's model is CC BY-NC-SA 4.0: used here for benchmarks only, never shipped. Set up with
``bench/peers/setup_birdnet.sh``. Writes every 3-s window's detections above ``--min-conf`` to a
CSV (file, start_s, end_s, label, confidence) and prints ``wall_s=<seconds>`` for the prediction.

    .peers/birdnet-venv/bin/python bench/peers/birdnet_predict.py OUT.csv FILE... [--workers 2]
"""

import argparse
import time

from birdnet_model import load_birdnet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_csv")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min-conf", type=float, default=0.1)
    args = parser.parse_args()
    model = load_birdnet()
    started = time.perf_counter()
    result = model.predict(
        args.files,
        n_workers=args.workers,
        batch_size=8,
        top_k=5,
        default_confidence_threshold=args.min_conf,
    )
    wall_s = time.perf_counter() - started
    frame = result.to_dataframe()
    frame.to_csv(args.out_csv, index=False)
    print(f"wall_s={wall_s:.3f} rows={len(frame)}")


if __name__ == "__main__":
    main()
