"""The starter model: the small class-agnostic call detector ``biomae annotate`` uses without
``--model`` (:func:`default_model`). It ships as ``biomae/data/starter.safetensors`` with its card
``STARTER_MODEL_CARD.md``; how it is built (data selection, training, card) lives with its build
script, ``scripts/starter_model.py`` and ``scripts/starter_recipe.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGED_MODEL = Path(__file__).resolve().parent / "data" / "starter.safetensors"
MODEL_ENV = "BIOMAE_STARTER_MODEL"


def default_model() -> Path | None:
    """The detector ``biomae annotate`` uses without ``--model``: ``$BIOMAE_STARTER_MODEL`` (an
    error if set to a missing file), else the packaged ``biomae/data/starter.safetensors`` when
    present, else None (the energy detector)."""
    if os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV])
        if not path.is_file():
            raise FileNotFoundError(f"${MODEL_ENV}={path}: no such model file")
        return path
    return PACKAGED_MODEL if PACKAGED_MODEL.is_file() else None
