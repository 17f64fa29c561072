"""DDP and FSDP2 on 2 CPU processes (gloo, launched with torchrun) match one process.

The reference is one process accumulating 2 micro-batches per step; the parallel runs are 2
processes with 1 micro-batch each (this file is also the torchrun script: both modes run in one
launch to pay the process start-up once). The model is the tiny preset cut to 2 encoder blocks
and 1 decoder block to keep the test fast. The data stream and the masks are indexed by global
micro-batch (``biomae.train.data``), so both see the same windows and masks, and with the same
global batch the losses and weights agree up to float summation order.

Tolerance: 1e-5 absolute on the loss (observed ~1e-7) and 1e-6 on every weight after 3 steps
(observed ~1e-8), except the attention *key* biases: their true gradient is zero (softmax ignores
a shift shared by all keys), so Adam turns rounding noise into updates of up to ``lr`` per step;
they are only checked to stay within ``steps x lr``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from biomae import distributed
from biomae.train import common, pretrain
from biomae.train.pretrain_config import load_config

RATE = 16000
TOLERANCE = 1e-5  # on the loss
WEIGHT_TOLERANCE = 1e-6
LR, STEPS = 1e-3, 3


def write_run(tmp_path) -> str:
    """Tiny preset, 0.64-s windows, 3 steps; global batch 4 = 2 windows x 2 micro-batches."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(1)
    t = np.arange(3 * RATE) / RATE
    for i in range(3):
        tone = np.sin(2 * np.pi * (800 + 300 * i) * t) * (np.sin(5 * t + i) > 0)
        soundfile.write(
            audio / f"rec{i}.flac",
            (0.3 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32),
            RATE,
        )
    path = tmp_path / "run.toml"
    path.write_text(
        f"""
[model]
preset = "tiny"
[model.overrides]
"encoder.depth" = 2
decoder_depth = 1
[front_end]
sample_rate = {RATE}
n_fft = 512
[data]
audio_globs = ["{audio / "*.flac"}"]
window_s = 0.64
batch_size = 2
eval_fraction = 0.3
n_eval_windows = 2
[optim]
lr = 1e-3
warmup_steps = 1
max_steps = 3
grad_accum = 2
[train]
out_dir = "{tmp_path / "reference"}"
log_every = 1
eval_every = 0
ckpt_every = 0
n_pictures = 0
""",
        encoding="utf-8",
    )
    return str(path)


def losses(out_dir) -> list[float]:
    with open(os.path.join(out_dir, "metrics.csv"), newline="", encoding="utf-8") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


MODES = ("ddp", "fsdp")


def run_parallel(toml: str, out_root: str) -> None:
    """Body of the torchrun script: each mode with 1 micro-batch per process."""
    for mode in MODES:
        overrides = [
            f"train.parallel={mode}",
            "optim.grad_accum=1",
            f"train.out_dir={os.path.join(out_root, mode)}",
        ]
        pretrain.pretrain(load_config(toml, overrides), progress=False)
    distributed.destroy()


def torchrun(toml: str, out_root) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        __file__,
        toml,
        str(out_root),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_and_fsdp2_match_one_process(tmp_path):
    toml = write_run(tmp_path)
    pretrain.pretrain(load_config(toml), progress=False)
    reference = losses(tmp_path / "reference")
    ref_weights = common.load_checkpoint(tmp_path / "reference" / "checkpoint.pt")["model"]
    assert len(reference) == 3 and reference[2] < reference[0]

    torchrun(toml, tmp_path)
    for mode in MODES:
        out = tmp_path / mode
        np.testing.assert_allclose(losses(out), reference, atol=TOLERANCE, rtol=0, err_msg=mode)
        weights = common.load_checkpoint(out / "checkpoint.pt")["model"]
        assert weights.keys() == ref_weights.keys()
        for name, tensor in ref_weights.items():
            diff = (weights[name] - tensor).abs()
            if name.endswith("attn.qkv.bias"):
                q_diff, k_diff, v_diff = diff.view(3, -1).amax(dim=1).tolist()
                assert k_diff <= STEPS * LR, f"{mode}: {name} key bias moved {k_diff}"
                diff = torch.tensor([q_diff, v_diff])
            assert float(diff.max()) <= WEIGHT_TOLERANCE, f"{mode}: {name} differs by {diff.max()}"
        assert (out / "encoder.safetensors").exists()


def test_single_process_helpers_are_no_ops():
    info = distributed.init("cpu")
    assert (info.rank, info.world_size, info.is_main) == (0, 1, True)
    assert distributed.all_reduce_mean([1.5, torch.tensor(2.0)]) == [1.5, 2.0]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(model, info) is model
    distributed.barrier()
    distributed.destroy()


def test_activation_checkpointing_keeps_names_and_gradients():
    from biomae.models.mae import MAE
    from biomae.models.presets import get_preset

    config = get_preset("tiny", **{"encoder.depth": 2, "decoder_depth": 1})
    torch.manual_seed(0)
    plain = MAE(config)
    torch.manual_seed(0)
    wrapped = distributed.apply_activation_checkpointing(MAE(config))
    assert list(plain.state_dict()) == list(wrapped.state_dict())
    spec = torch.randn(2, 128, 32)
    for model in (plain, wrapped):
        model(spec, mask_generator=torch.Generator().manual_seed(0))["loss"].backward()
    for (name, a), b in zip(plain.named_parameters(), wrapped.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)
    assert len(distributed.block_lists(plain)) == 2


if __name__ == "__main__":
    run_parallel(sys.argv[1], sys.argv[2])
