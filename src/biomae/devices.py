"""Where and in what precision a model runs: the one home of device resolution and bf16 autocast.

Training (:mod:`biomae.train`), annotating (:mod:`biomae.detectors.model`), scoring
(:mod:`biomae.infer`) and embedding (:mod:`biomae.embed`) all resolve ``--device`` with
:func:`resolve_device` and enter :func:`autocast`; ``--bf16 auto`` is :func:`bf16_is_fast`.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when used: deciding bf16 on a CPU needs none
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` for a ``--device`` value: ``auto`` is the GPU of this process's
    ``LOCAL_RANK`` (0 outside torchrun) when CUDA is available, else the CPU.

    Raises:
        ValueError: not one of auto, cpu, cuda, cuda:N, or a GPU that is not there (one line
            naming the value and what to use instead).
    """
    import torch

    if name == "auto":  # under torchrun, each rank takes the GPU of its LOCAL_RANK
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not a device biomae runs on; use {DEVICE_CHOICES}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r}: torch sees no CUDA GPU here (no GPU, no driver or a CPU-only "
                "torch); use --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here, "
                f"numbered from 0; use cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    return device


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_is_fast(device_type: str, flags: set[str] | None = None) -> bool:
    """What ``--bf16 auto`` chooses: bf16 autocast only where it was measured to be faster with
    the same events — CUDA, and CPUs with AMX (Intel Sapphire Rapids and later: ``amx_bf16`` and
    ``amx_tile`` in ``flags``, by default :func:`cpu_flags`, else torch's own AMX check).

    CPUs with AVX512-BF16 but no AMX (AMD Zen 4/5, Intel Cooper Lake) get fp32: there bf16 is no
    faster (10 min of audio: 3.6 s either way on an AMD EPYC) and it changes results (the bundled
    example loses one of its six calls). CPUs with neither run bf16 matmuls ~40x slower.
    """
    if device_type == "cuda":
        return True
    if device_type != "cpu":
        return False
    if flags is None:
        flags = cpu_flags()
        if not flags:  # no /proc/cpuinfo: ask torch
            import torch

            return bool(torch.cpu._is_amx_tile_supported())
    return {"amx_bf16", "amx_tile"} <= flags


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CPU or CUDA when ``enabled``, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
