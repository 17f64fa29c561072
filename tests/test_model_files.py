"""Model files (biomae.models.files): a self-describing spec, the shipped starter model (an older
format) still loading with the same scores, and fine-tuning starting from any model file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors import safe_open

from biomae.features import FrontEnd
from biomae.models import files

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "biomae" / "data" / "example.flac"


def test_shipped_starter_loads_from_its_spec_with_the_same_scores():
    """The starter (format biomae-finetuned/1, the run config inside) loads without building a
    training config, and scores the bundled example as recorded before model files had a spec."""
    model, spec = files.load_model("starter")
    assert (spec.task, spec.labels, spec.window_s) == ("detect", [], 5.12)
    assert (spec.decode.threshold_on, spec.decode.threshold_off) == (0.9, 0.54)
    front_end = FrontEnd(spec.front_end, spec.encoder.patch_t)
    audio, sample_rate = soundfile.read(EXAMPLE, dtype="float32")
    assert sample_rate == spec.front_end.sample_rate
    n = spec.window_samples
    with torch.no_grad():
        out = model(front_end(torch.from_numpy(np.stack([audio[:n], audio[-n:]]))))
    probs = torch.sigmoid(out["activity"][..., 0])  # (2, 256)
    torch.testing.assert_close(
        probs.mean(dim=1), torch.tensor([0.61711562, 0.60205519]), atol=2e-6, rtol=0
    )


def test_a_saved_model_describes_itself(tiny_detect_model):
    """A fine-tuned file holds its spec: front end, encoder, head, window, labels, decode."""
    with safe_open(str(tiny_detect_model), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == files.MODEL_FORMAT
    spec = json.loads(metadata["spec"])
    assert spec["front_end"]["sample_rate"] == 16000 and spec["window_s"] == 1.28
    assert spec["head"]["n_classes"] == 1 and spec["decode"]["threshold_on"] == 0.5
    model, loaded = files.load_model(tiny_detect_model)
    assert loaded == files.read_spec(tiny_detect_model) and loaded.encoder.depth == 2
    encoder, same = files.load_encoder(tiny_detect_model)
    assert same == loaded
    assert all(
        torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder.state_dict().items()
    )


def test_an_encoder_is_not_a_detector_and_a_foreign_file_is_named(tmp_path):
    from safetensors.torch import save_file

    from biomae.models.vit import Encoder, ViTConfig

    encoder_path = tmp_path / "encoder.safetensors"
    vit = ViTConfig(n_mels=64, depth=1)
    spec = files.ModelSpec("encoder", files.FrontEndConfig(n_mels=64), vit, window_s=2.56)
    files.save_model(encoder_path, spec, Encoder(vit).state_dict())
    with pytest.raises(files.ModelFileError, match="an encoder without a head"):
        files.load_model(encoder_path)
    assert files.load_encoder(encoder_path)[1] == spec
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(files.ModelFileError, match="foreign.safetensors: metadata format is None"):
        files.load_encoder(foreign)


def run_config(out: Path, **head) -> dict:
    """A fine-tuning config that fits the tiny_detect_model fixture (16 kHz, 64 mels, 2 blocks)."""
    return {
        "data": {"data_dir": str(out), "window_s": 1.28, "batch_size": 4},
        "model": {"preset": "tiny", "overrides": {"encoder.n_mels": 64, "encoder.depth": 2}},
        "front_end": {"sample_rate": 16000, "n_fft": 512, "n_mels": 64},
        "head": {"task": "detect", "upsample": 8, **head},
        "train": {"out_dir": str(out)},
    }


def test_finetune_init_takes_a_finetuned_model_whole_or_its_encoder(tiny_detect_model, tmp_path):
    """--init with a fine-tuned model: same task and head -> encoder and head; another head
    (two labels) -> its encoder only, a fresh head."""
    from biomae.train.finetune import build_model, config_from_dict

    init, _ = files.load_model(tiny_detect_model)
    same = run_config(tmp_path)
    same["finetune"] = {"init": str(tiny_detect_model)}
    model = build_model(config_from_dict(same))
    for name, tensor in init.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    other = run_config(tmp_path, labels=["a", "b"])
    other["finetune"] = {"init": str(tiny_detect_model)}
    model = build_model(config_from_dict(other))
    for name, tensor in init.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
    assert model.head.config.n_classes == 2


def test_finetune_init_starter_names_the_shipped_model(tmp_path):
    from biomae.train.finetune import build_model, config_from_dict

    starter, spec = files.load_model("starter")
    raw = {
        "data": {"data_dir": str(tmp_path), "window_s": spec.window_s},
        "front_end": {"n_mels": spec.front_end.n_mels},
        "finetune": {"init": "starter"},
    }
    model = build_model(config_from_dict(raw))
    for name, tensor in starter.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_calibration_scores_what_annotate_ships(tiny_detect_model, tmp_path):
    """Fine-tuning validation (where the threshold is calibrated) and biomae annotate score a
    recording through the same windows and padding: the same frame scores. The recording is
    3.3 windows long, so the last window is short (padded by looping its own audio)."""
    from biomae.detectors.model import InferConfig, ModelDetector
    from biomae.train.data import Recording
    from biomae.train.finetune import LabeledRecording, load_finetuned, predict_recording

    rng = np.random.default_rng(0)
    path = tmp_path / "rec.wav"
    soundfile.write(
        path, (0.1 * rng.standard_normal(int(16000 * 1.28 * 3.3))).astype("float32"), 16000
    )
    model, config = load_finetuned(tiny_detect_model)
    item = LabeledRecording(
        Recording(str(path), 16000, soundfile.info(path).frames), events=None, name="rec"
    )
    validation = predict_recording(model, item, config, "cpu")["activity"]
    shipped, _, _ = ModelDetector(tiny_detect_model, InferConfig(bf16=False)).frame_scores(path)
    n_frames = math.ceil(soundfile.info(path).frames / 320)  # 20-ms head frames at 16 kHz
    assert validation.shape == shipped.shape == (n_frames, 1)
    np.testing.assert_allclose(validation, shipped, rtol=0, atol=1e-6)
