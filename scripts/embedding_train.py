"""Train the shipped embedding model (issue 18): encoder + projection head, SupCon + InfoNCE.

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/embedding_train.py \
        --sources-root /work/data_sources --data-root ../shared/data \
        --init starter --max-steps 700 --minutes 38 --seed 0 --out runs/embed_starter

Data: :func:`biomae.evaluate.embedding_split.training_clips` — the permissively licensed
clip-labelled sources (16 InsectSet32 training species, 0 A.D. and Scratch animal sounds of kinds
not held out, chimpanzee calls) and unlabeled shared recordings; the held-out species of
:mod:`biomae.evaluate.embedding_split` are refused there. Each file's first ``--max-file-s``
seconds are read once at the encoder's sample rate.

Each step:

- **SupCon** (:func:`biomae.losses.supcon_loss`) over ``--labelled`` clips of distinct labels
  drawn uniformly over labels, two views each (rows of one label are positives);
- **InfoNCE** (:func:`biomae.losses.info_nce`) over ``--unlabeled`` windows of any training
  file, two views each;
- a view is a random crop of ``window_s`` (a clip shorter than that is zero-padded and pooled
  over the patches it covers, as :class:`biomae.embed.Embedder` does), a random gain and
  coloured noise at a random SNR (:mod:`biomae.augment`: both keep events exact), and
  SpecAugment masks on the log-mel;
- loss = SupCon + ``--infonce-weight`` * InfoNCE; AdamW with warm-up and cosine decay, gradients
  clipped at 1, a non-finite loss stops the run.

Stops at ``--max-steps`` or after ``--minutes`` (whichever first; the card states which) and
writes ``OUT/embedding.safetensors`` (a ``task="embed"`` model file: the encoder for
:class:`~biomae.embed.Embedder` and the projection head), a checkpoint every ``--save-every``
steps, and ``OUT/log.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from biomae import audio as audio_io
from biomae import losses
from biomae.augment.core import GainConfig, RandomGain
from biomae.augment.noise import AddNoise, NoiseConfig
from biomae.augment.spectral import SpecAugmentConfig, spec_augment
from biomae.evaluate.embedding_split import training_clips
from biomae.features import FrontEnd
from biomae.models.files import ModelSpec, load_encoder, save_model
from biomae.models.heads import ProjectionHead
from biomae.models.vit import Encoder


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources-root", type=Path, required=True)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument(
        "--init",
        default="starter",
        help="starter (the detector's encoder), scratch, or an embedding model file to go on from",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window-s", type=float, default=2.56)
    p.add_argument("--labelled", type=int, default=24, help="clips per step (two views each)")
    p.add_argument("--unlabeled", type=int, default=8, help="windows per step (two views each)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=35.0)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--infonce-weight", type=float, default=0.5)
    p.add_argument("--max-file-s", type=float, default=30.0)
    p.add_argument("--save-every", type=int, default=100)
    return p.parse_args(argv)


def load_audio(table, sample_rate: int, max_file_s: float) -> list[np.ndarray]:
    """Each file's first ``max_file_s`` seconds, mono at ``sample_rate``."""
    out = []
    for path in table["path"]:
        audio, _ = audio_io.load(path, sample_rate=sample_rate, duration_s=None)
        out.append(np.ascontiguousarray(audio[: round(max_file_s * sample_rate)], np.float32))
    return out


class Views:
    """Random crops of ``n_samples`` with gain and noise; returns audio and covered samples."""

    def __init__(self, n_samples: int, rng: np.random.Generator):
        self.n_samples = n_samples
        self.rng = rng
        self.gain = RandomGain(GainConfig(-12.0, 6.0))
        self.noise = AddNoise(NoiseConfig(snr_db=(5.0, 40.0), bank_samples=8 * n_samples))

    def crop(self, audio: np.ndarray, near: int | None = None) -> tuple[np.ndarray, int]:
        """A crop starting anywhere (or within half a window of ``near``)."""
        room = max(0, len(audio) - self.n_samples)
        if near is None:
            start = int(self.rng.integers(room + 1))
        else:
            half = self.n_samples // 2
            start = int(np.clip(near + self.rng.integers(-half, half + 1), 0, room))
        piece = audio[start : start + self.n_samples]
        out = np.zeros(self.n_samples, np.float32)
        out[: len(piece)] = piece
        return out, len(piece)

    def augment(self, audio: np.ndarray, covered: int) -> np.ndarray:
        audio, _ = self.gain(audio, None, self.rng)
        if self.rng.random() < 0.7:
            noisy, _ = self.noise(audio[:covered], None, self.rng)
            audio = audio.copy()
            audio[:covered] = noisy
        return audio


def pooled_mask(covered: list[int], grid: tuple[int, int], patch_samples: int) -> torch.Tensor:
    """``(B, grid_f * grid_t)`` True on the patches of each row's covered audio."""
    grid_f, grid_t = grid
    n_patches = torch.tensor([max(1, min(grid_t, math.ceil(c / patch_samples))) for c in covered])
    in_time = torch.arange(grid_t)[None, :] < n_patches[:, None]  # (B, grid_t)
    return in_time[:, None, :].expand(-1, grid_f, -1).reshape(len(covered), -1)  # (B, N)


def build(init: str):
    """``(encoder, head weights or None, spec)`` of ``--init``."""
    if init not in ("starter", "scratch"):
        encoder, spec = load_encoder(init)
        head = {k[5:]: v for k, v in load_file(init).items() if k.startswith("head.")}
        return encoder.train(), head, spec
    encoder, spec = load_encoder("starter")
    if init == "scratch":
        torch.manual_seed(0)
        encoder = Encoder(spec.encoder)
    return encoder.train(), None, spec


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    encoder, head_state, starter_spec = build(args.init)
    sample_rate = starter_spec.front_end.sample_rate
    table = training_clips(args.sources_root, args.data_root)
    started = time.perf_counter()
    clips = load_audio(table, sample_rate, args.max_file_s)
    print(f"{len(table)} training files read in {time.perf_counter() - started:.0f} s", flush=True)
    labels = table["label"].tolist()
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if label:
            by_label.setdefault(label, []).append(i)
    names = sorted(by_label)
    print(f"{len(names)} labels, {sum(map(len, by_label.values()))} labelled files", flush=True)

    n_samples = round(args.window_s * sample_rate)
    front_end = FrontEnd(starter_spec.front_end, encoder.config.patch_t)
    patch_samples = round(encoder.config.patch_t * starter_spec.front_end.hop_s * sample_rate)
    head = ProjectionHead(encoder.config.dim, out_dim=128).train()
    if head_state is not None:
        head.load_state_dict(head_state)
    params = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    views = Views(n_samples, rng)
    spec_aug = SpecAugmentConfig(n_time_masks=1, max_time_frames=20, max_freq_bins=8)
    spec = ModelSpec(
        task="embed",
        front_end=starter_spec.front_end,
        encoder=encoder.config,
        window_s=args.window_s,
        head={"out_dim": 128},
    )

    def embed(batch: list[tuple[np.ndarray, int]]) -> torch.Tensor:
        audio = torch.from_numpy(np.stack([a for a, _ in batch]))  # (B, n_samples)
        mel = spec_augment(front_end(audio), spec_aug, rng)  # (B, F, T)
        tokens = encoder.forward_features(mel)  # (B, N, D)
        mask = pooled_mask([c for _, c in batch], encoder.grid(mel.shape[-1]), patch_samples)
        return head(tokens, mask)  # (B, E)

    def save(path: Path, step: int) -> None:
        state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        state |= {f"head.{k}": v for k, v in head.state_dict().items()}
        extra = {"recipe": "scripts/embedding_train.py", "args": vars(args), "step": step}
        save_model(path, spec, state, extra=json.loads(json.dumps(extra, default=str)))

    log = open(args.out / "log.csv", "w")  # noqa: SIM115  (closed below)
    log.write("step,elapsed_s,lr,supcon,infonce\n")
    stop = "max_steps"
    step = 0
    started = time.perf_counter()
    for step in range(1, args.max_steps + 1):
        elapsed_s = time.perf_counter() - started
        if elapsed_s > args.minutes * 60:
            stop, step = "minutes", step - 1
            break
        progress = (step - 1) / args.max_steps
        lr = args.lr * min(1.0, step / args.warmup_steps) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        chosen = rng.choice(len(names), size=min(args.labelled, len(names)), replace=False)
        rows, targets = [], []
        for k in chosen:
            clip = clips[by_label[names[k]][int(rng.integers(len(by_label[names[k]])))]]
            first = views.crop(clip)
            second = views.crop(clip)
            for audio, covered in (first, second):
                rows.append((views.augment(audio, covered), covered))
                targets.append(int(k))
        pairs_a, pairs_b = [], []
        for i in rng.integers(len(clips), size=args.unlabeled):
            audio, covered = views.crop(clips[i])
            near = max(0, int(rng.integers(max(1, len(clips[i]) - n_samples + 1))))
            other, other_covered = views.crop(clips[i], near=near)
            pairs_a.append((views.augment(audio, covered), covered))
            pairs_b.append((views.augment(other, other_covered), other_covered))
        z = embed(rows + pairs_a + pairs_b)  # (2L + 2U, E)
        n_l, n_u = len(rows), len(pairs_a)
        supcon = losses.supcon_loss(z[:n_l], torch.tensor(targets), args.temperature)
        nce = losses.info_nce(z[n_l : n_l + n_u], z[n_l + n_u :], args.temperature)
        loss = supcon + args.infonce_weight * nce
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"step {step}: loss {loss.item()} (supcon {supcon}, nce {nce})"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        log.write(f"{step},{elapsed_s:.1f},{lr:.3g},{supcon.item():.4f},{nce.item():.4f}\n")
        log.flush()
        if step % 10 == 0:
            print(f"step {step} {elapsed_s:.0f}s supcon {supcon:.3f} nce {nce:.3f}", flush=True)
        if step % args.save_every == 0:
            save(args.out / f"step{step}.safetensors", step)
    log.close()
    save(args.out / "embedding.safetensors", step)
    (args.out / "summary.json").write_text(
        json.dumps(
            {
                "steps": step,
                "stopped_by": stop,
                "minutes": (time.perf_counter() - started) / 60,
                "files": len(table),
                "labels": len(names),
                "hours": sum(len(c) for c in clips) / sample_rate / 3600,
                "hours_by_source": table.assign(hours=[len(c) / sample_rate / 3600 for c in clips])
                .groupby("source")["hours"]
                .sum()
                .round(4)
                .to_dict(),
                "args": vars(args),
            },
            default=str,
            indent=1,
        )
    )
    print(f"stopped by {stop} at step {step} -> {args.out / 'embedding.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
