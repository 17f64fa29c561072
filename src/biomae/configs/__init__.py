"""The named runs shipped with biomae, as TOML files inside the package (so a ``pip install``
has them too): ``pretrain_tiny.toml``, ``finetune_detect.toml``, ``starter_pretrain.toml`` …

``biomae pretrain --config tiny`` and ``biomae finetune --config detect`` name them by preset:
the file stem without its kind (``pretrain_tiny`` -> ``tiny``, ``starter_finetune`` ->
``starter``). :func:`resolve` turns a ``--config`` value (a file path or a preset) into a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

KINDS = ("pretrain", "finetune")


def folder() -> Path:
    """The folder holding the shipped ``*.toml`` configs."""
    return Path(str(resources.files(__name__)))


def presets(kind: str) -> dict[str, Path]:
    """Preset name -> shipped TOML file for ``kind`` (``"pretrain"`` or ``"finetune"``)."""
    if kind not in KINDS:
        raise ValueError(f"config kind {kind!r} not in {KINDS}")
    found = {}
    for path in sorted(folder().glob("*.toml")):
        parts = path.stem.split("_")
        if kind in parts:
            found["_".join(p for p in parts if p != kind)] = path
    return found


def resolve(value: str | Path, kind: str) -> Path:
    """The TOML file a ``--config`` value names: an existing file as given, else a shipped preset
    of ``kind`` by name (``tiny``), by stem (``pretrain_tiny``) or by file name
    (``pretrain_tiny.toml``, so the repository paths ``configs/pretrain_tiny.toml`` of older
    instructions still work from anywhere).

    Raises:
        FileNotFoundError: neither a file nor a preset; the message lists the presets.
    """
    path = Path(value)
    if path.is_file():
        return path
    shipped = presets(kind)
    for name, preset in shipped.items():
        old_repo_path = path.name == preset.name and path.parent.name == "configs"
        if str(value) in (name, preset.stem) or old_repo_path:
            return preset
    raise FileNotFoundError(
        f"config file {value} not found, and it is no {kind} preset; presets: "
        f"{', '.join(shipped)} (files in {folder()})"
    )
