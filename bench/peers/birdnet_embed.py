"""BirdNET V2.4 embeddings of audio clips; runs in the peers' own venv, never imported by biomae.

BirdNET's model is CC BY-NC-SA 4.0: used for benchmarks only, never shipped. Set up with
``bench/peers/setup_birdnet.sh``. Reads ``IN.npz`` (``audio``: the clips concatenated, float32;
``offsets``: (N + 1,) sample offsets; ``sample_rate``), embeds each clip in BirdNET's 3-s
segments (a clip shorter than 3 s is zero-padded by BirdNET) and writes ``OUT.npz`` with
``embeddings`` (N, 1024): the mean over each clip's segments.

    .peers/birdnet-venv/bin/python bench/peers/birdnet_embed.py IN.npz OUT.npz
"""

import argparse

import numpy as np
from birdnet_model import load_birdnet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("in_npz")
    parser.add_argument("out_npz")
    args = parser.parse_args()
    data = np.load(args.in_npz)
    audio, offsets, sample_rate = data["audio"], data["offsets"], int(data["sample_rate"])
    clips = [audio[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    model = load_birdnet()
    result = model.encode_arrays([(clip, sample_rate) for clip in clips], batch_size=8)
    emb = np.asarray(result.embeddings, np.float32)  # (N, n_segments, 1024)
    masked = np.asarray(result.embeddings_masked)  # (N, n_segments, 1024), True = no segment
    valid = ~masked.all(axis=-1)  # (N, n_segments)
    valid[:, 0] |= ~valid.any(axis=1)  # a clip always has its first segment
    mean = (emb * valid[..., None]).sum(axis=1) / valid.sum(axis=1, keepdims=True)  # (N, 1024)
    np.savez(args.out_npz, embeddings=mean.astype(np.float32))
    print(f"embedded {len(clips)} clips, dim {mean.shape[1]}")


if __name__ == "__main__":
    main()
