"""The "your own species" recipe: the ``own_species`` finetune preset fits the shipped starter."""

from __future__ import annotations

import pytest


def test_the_own_species_preset_starts_from_the_starter_model_as_it_is(tmp_path, monkeypatch):
    """`--config own_species` (the README's "your own species" recipe) fits the shipped starter:
    same front end, encoder shape, head and decode threshold; small batch, low rate, 10 min."""
    from biomae.models.files import read_spec, resolve_model_path
    from biomae.train.finetune import load_config

    starter = resolve_model_path("starter")
    if not starter.exists():
        pytest.skip("no packaged starter model")
    monkeypatch.chdir(tmp_path)
    config = load_config("own_species", ["data.data_dir=x"])
    spec = read_spec(starter)
    assert config.finetune.init == "starter" and not config.finetune.calibrate_threshold
    assert config.front_end == spec.front_end
    assert config.data.window_s == spec.window_s
    assert config.decode.threshold_on == spec.decode.threshold_on
    assert config.head.outputs == ["activity"] and config.head.labels == []
    assert config.train.time_budget_s == 600 and config.data.batch_size == 4
