"""Run outputs of the pretraining loop: CSV logs that survive a resume, reconstruction pictures."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from biomae.atomic_io import atomic_path


def append_csv(path: Path, columns: list[str], row: dict) -> None:
    """Append ``row`` to the CSV log at ``path`` (with a header when the file is new)."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow(row)


def truncate_csv(path: Path, columns: list[str], last_step: int) -> None:
    """Drop log rows past ``last_step`` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= last_step]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def last_row(path: Path) -> dict:
    """The last row of the CSV log at ``path`` (an empty dict when it is missing or empty)."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


def save_pictures(core, spec: torch.Tensor, outputs: dict, path: Path, n_pictures: int) -> None:
    """PNG of input / masked input / reconstruction for the first ``n_pictures`` eval windows.

    Panels are in input units (per-clip normalised log-mel). With ``norm_pix_loss`` the model
    predicts per-patch normalised pixels; as in the MAE paper's figures they are shown
    de-normalised with the true patch's mean and std. The reconstruction keeps the visible patches
    and shows the predicted ones where the input was masked.

    Args:
        core: the bare MAE (for patchify / unpatchify).
        spec: ``(N, F, T)`` eval spectrograms.
        outputs: ``pred (B, N_tok, P)``, ``mask (B, N_tok)`` for the first windows of ``spec``.
        path: destination PNG (written atomically).
        n_pictures: rows of the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n_pictures, spec.shape[0], outputs["pred"].shape[0])
    n_frames = spec.shape[-1]
    patches = core.encoder.patchify(spec[:n].cpu().float())  # (n, N_tok, P)
    pred, mask = outputs["pred"][:n], outputs["mask"][:n, :, None]  # (n, N_tok, P), (n, N_tok, 1)
    if core.config.norm_pix_loss:
        mean = patches.mean(dim=-1, keepdim=True)
        std = (patches.var(dim=-1, keepdim=True) + 1e-6).sqrt()
        pred = pred * std + mean
    images = {
        "input": spec[:n].cpu(),  # (n, F, T)
        "masked input": core.reconstruct(patches.masked_fill(mask, float("nan")), n_frames),
        "reconstruction": core.reconstruct(torch.where(mask, pred, patches), n_frames),
    }
    fig, axes = plt.subplots(n, 3, figsize=(12, 2.6 * n), squeeze=False)
    for row in range(n):
        for col, (title, image) in enumerate(images.items()):
            ax = axes[row, col]
            ax.imshow(
                image[row].numpy(),
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=-2.5,
                vmax=2.5,
                interpolation="nearest",
            )
            ax.set_title(f"held-out window {row}: {title}", fontsize=9)
            ax.set_xlabel("frame (10 ms)")
            ax.set_ylabel("mel bin")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
