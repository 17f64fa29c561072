"""``biomae models``: every preset listed with its parameter counts and FLOPs."""

from __future__ import annotations

from biomae.cli import main
from biomae.models.presets import PRESETS


def test_models_command_lists_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for name in PRESETS:
        assert name in lines
    assert "1010.4M" in lines["vit1b"] and "505.6M" in lines["vit1b"]
    assert "5.4M" in lines["tiny"]


def test_models_command_rejects_bad_clip_length(capsys):
    assert main(["models", "--clip-s", "-1"]) == 2
    assert capsys.readouterr().err == "biomae models: --clip-s -1 must be > 0 seconds\n"
