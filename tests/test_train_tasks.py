"""Fine-tuning tasks (biomae.train.tasks): a new task is one class in the registry, and the shipped
starter detector still loads and scores the bundled example as it did before tasks were objects."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_finetune import small_config, synth_soundscapes
from torch import nn

from biomae.train.finetune import config_from_dict, finetune, load_finetuned
from biomae.train.pretrain_config import ConfigError
from biomae.train.tasks import TASKS, DetectTask, Task

REPO = Path(__file__).resolve().parents[1]
STARTER = REPO / "src" / "biomae" / "data" / "starter.safetensors"


class DurationTask(Task):
    """A toy task: regress the total event duration (s) inside each window from pooled tokens."""

    name = "duration"

    def build_head(self, config, vit_config):
        return nn.Linear(vit_config.dim, 1)

    def forward(self, head, tokens, grid):
        return head(tokens.mean(dim=1))[:, 0]  # (B,)

    def targets(self, head, out, batch, config):
        seconds = []
        for item, offset_s in zip(batch["items"], batch["offsets_s"], strict=True):
            start = item.events.start_s.clip(lower=offset_s)
            end = item.events.end_s.clip(upper=offset_s + config.data.window_s)
            seconds.append(float((end - start).clip(lower=0).sum()))
        return torch.tensor(seconds, device=out.device)

    def loss(self, out, targets, config):
        return nn.functional.mse_loss(out.float(), targets)

    def score(self, model, front_end, val_items, val_batch, config, device):
        out = model(front_end(val_batch["audio"]))
        loss = self.loss(out, self.targets(model.head, out, val_batch, config), config)
        return -float(loss), config.decode


@pytest.fixture(scope="module")
def scapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scapes")
    synth_soundscapes(folder, n_files=5, seed=0, duration_s=4.0)
    return folder


def test_a_task_is_one_class_in_the_registry(scapes, tmp_path, monkeypatch):
    """Registering DurationTask is all it takes to fine-tune, save and reload a new head."""
    raw = small_config(scapes, tmp_path / "run", head={"task": "duration"})
    with pytest.raises(ConfigError, match=r"head.task='duration' not in \('detect'"):
        config_from_dict(raw)
    monkeypatch.setitem(TASKS, "duration", DurationTask())
    summary = finetune(config_from_dict(raw), log=lambda line: None)
    assert summary["step"] == 2 and math.isfinite(summary["best_score"])
    assert summary["best_score"] <= 0  # minus a mean squared error
    model, config = load_finetuned(summary["best_path"])
    assert model.task == config.head.task == "duration" and isinstance(model.head, nn.Linear)
    assert model(torch.randn(3, 64, 128)).shape == (3,)


def test_shipped_starter_scores_the_example_as_before():
    """Activity probabilities of the packaged starter model on the first and last window of the
    bundled example, recorded from the code before tasks became objects (torch CPU, float32)."""
    import soundfile

    from biomae.features import FrontEnd

    model, config = load_finetuned(STARTER)
    assert model.task == "detect" and isinstance(TASKS[model.task], DetectTask)
    front_end = FrontEnd(config.front_end, model.encoder.config.patch_t, torch.device("cpu"))
    audio, sample_rate = soundfile.read(REPO / "src/biomae/data/example.flac", dtype="float32")
    assert sample_rate == config.front_end.sample_rate
    n = config.window_samples
    with torch.no_grad():
        out = model(front_end(torch.from_numpy(np.stack([audio[:n], audio[-n:]]))))
    assert set(out) == {"activity"}
    probs = torch.sigmoid(out["activity"][..., 0])  # (2, 256)
    expected = [
        [0.0361967, 0.9262639, 0.2527342, 0.9162962, 0.2972177, 0.4807061, 0.9513716, 0.6350515],
        [0.2453138, 0.4405080, 0.1018368, 0.5342612, 0.9647520, 0.9913845, 0.9829522, 0.8819754],
    ]  # every 32nd head frame (0.64 s)
    torch.testing.assert_close(probs[:, ::32], torch.tensor(expected), atol=2e-5, rtol=0)
    torch.testing.assert_close(
        probs.mean(dim=1), torch.tensor([0.61711562, 0.60205519]), atol=2e-6, rtol=0
    )
