"""BirdNET V2.4 embeddings of clips, for the embedding probes' peer baseline.

BirdNET runs in its own virtual environment (``bench/peers/setup_birdnet.sh``; the interpreter is
``BIOMAE_BIRDNET_PYTHON`` or ``.peers/birdnet-venv/bin/python`` of the checkout), in a
subprocess running ``bench/peers/birdnet_embed.py``: biomae never imports it, and its model
(CC BY-NC-SA 4.0) is never shipped. The clips go over as one ``.npz`` and come back as the mean
of BirdNET's 3-s segment embeddings, ``(N, 1024)``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from biomae.detectors.birdnet import BIRDNET_PYTHON, REPO

BIRDNET_EMBED_SCRIPT = REPO / "bench" / "peers" / "birdnet_embed.py"


def python() -> Path:
    """The BirdNET environment's interpreter (``BIOMAE_BIRDNET_PYTHON`` read at call time)."""
    return Path(os.environ.get("BIOMAE_BIRDNET_PYTHON", BIRDNET_PYTHON))


def unavailable() -> str | None:
    """Why BirdNET embeddings cannot run here, or None when they can."""
    if not python().is_file():
        return (
            f"no BirdNET environment at {python()} (run bench/peers/setup_birdnet.sh, or point "
            "BIOMAE_BIRDNET_PYTHON at it)"
        )
    if not BIRDNET_EMBED_SCRIPT.is_file():
        return f"BirdNET embedding runner {BIRDNET_EMBED_SCRIPT} is absent"
    return None


def embed(clips: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """``(N, 1024)`` BirdNET embeddings of mono float32 clips at ``sample_rate``.

    Raises:
        RuntimeError: BirdNET is unavailable, or its run failed (its last stderr lines quoted).
    """
    reason = unavailable()
    if reason:
        raise RuntimeError(f"BirdNET embeddings: {reason}")
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    with tempfile.TemporaryDirectory(prefix="biomae-birdnet-") as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            inputs,
            audio=np.concatenate(clips).astype(np.float32),
            offsets=offsets,
            sample_rate=sample_rate,
        )
        command = [str(python()), str(BIRDNET_EMBED_SCRIPT), str(inputs), str(outputs)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not outputs.is_file():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"BirdNET embeddings failed (exit {done.returncode}): {tail}")
        embeddings = np.load(outputs)["embeddings"]
    if embeddings.shape[0] != len(clips):
        raise RuntimeError(f"BirdNET returned {embeddings.shape[0]} embeddings for {len(clips)}")
    return embeddings
