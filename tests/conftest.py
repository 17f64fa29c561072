"""Shared fixtures: the bundled example and ``../shared/data`` (real recordings; tests skip without
it)."""

from __future__ import annotations

import os

# pytest-xdist runs one worker per core: one math thread each. Two OpenMP threads per worker on two
# cores oversubscribe the machine, and torch's spinning threads then run ~100x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Models run on torch unless a test asks for ONNX Runtime: the default runtime, auto, would export
# every test model to ONNX once (seconds each) into the user's cache (biomae.onnx_scorer).
os.environ.setdefault("BIOMAE_RUNTIME", "torch")
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "biomae" / "data" / "example.flac"
SHARED_DATA = Path(os.environ.get("BIOMAE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def example_path() -> Path:
    """The bundled 10-s example recording (MIT, OpenSoundscape)."""
    return EXAMPLE


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped with a clear reason where it is absent."""
    if not (SHARED_DATA / "index" / "files.csv").exists():
        pytest.skip(f"real-data test: {SHARED_DATA} not found (set BIOMAE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_detect_model(tmp_path_factory) -> Path:
    """An untrained 2-block tiny detection model at 16 kHz (random weights: mechanics, not
    accuracy)."""
    import torch

    from biomae.train.finetune import build_model, config_from_dict, save_finetuned

    out = tmp_path_factory.mktemp("model")
    config = config_from_dict(
        {
            "data": {"data_dir": str(out), "window_s": 1.28, "batch_size": 4},
            "model": {"preset": "tiny", "overrides": {"encoder.n_mels": 64, "encoder.depth": 2}},
            "front_end": {"sample_rate": 16000, "n_fft": 512, "n_mels": 64},
            "head": {"task": "detect", "upsample": 8},
            "train": {"out_dir": str(out)},
        }
    )
    torch.manual_seed(0)
    path = out / "best.safetensors"
    save_finetuned(build_model(config), config, path, extra={})
    return path
