"""Everything parallel, in one place: the only module that imports ``torch.distributed``.

Models know nothing of parallelism; the training loop calls these helpers from outside:

* :func:`init` reads the ``torchrun`` environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``) and
  starts the process group: NCCL on CUDA, gloo on CPU. Without ``torchrun`` it is a no-op
  (one process, rank 0).
* :func:`wrap_ddp` (replicate), :func:`shard_fsdp` (FSDP2 ``fully_shard`` on every transformer
  block, then the root, with a :class:`MixedPrecisionPolicy` of bf16 params / fp32 reductions on
  CUDA), :func:`apply_activation_checkpointing`, :func:`maybe_compile`.
* :func:`full_state_dicts` / :func:`load_full_state_dicts`: model and optimizer state as full,
  unsharded CPU tensors keyed by parameter name, the same for every mode (a DDP or FSDP checkpoint
  resumes on one process and vice versa).
* :func:`all_reduce_mean` for logged metrics; :func:`barrier`, :func:`destroy`.

Multi-node launch (one ``torchrun`` per node, same command on every node)::

    torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d --rdzv-endpoint HOST:PORT \\
        -m biomae.cli pretrain --config vit1b

``HOST`` is any node reachable by all (it hosts the c10d rendezvous); ``G`` is the number of GPUs
per node. The global batch is ``data.batch_size x optim.grad_accum x N x G``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, on ``device``."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _resolve_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device='cuda' but torch.cuda.is_available() is False")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init(device: str = "auto") -> DistInfo:
    """Start the process group from ``torchrun`` env vars (NCCL on CUDA, gloo on CPU).

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.

    Returns:
        This process's :class:`DistInfo`; rank 0 of 1 when not launched by ``torchrun``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = _resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
            dist.init_process_group("nccl", device_id=resolved)
        else:
            dist.init_process_group("gloo")
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=resolved)


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def destroy() -> None:
    """Tear down the process group (safe to call when none was started)."""
    if is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(
    values: list[float | torch.Tensor], device: torch.device | None = None
) -> list[float]:
    """Means over all processes of a few scalars (one collective); the values themselves on one
    process. ``device`` must be the CUDA device under NCCL."""
    tensor = torch.stack(
        [torch.as_tensor(v, dtype=torch.float64).detach().reshape(()).cpu() for v in values]
    ).to(device)  # (n,)
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor.cpu().tolist()


def block_lists(model: nn.Module) -> list[nn.ModuleList]:
    """The transformer block lists of ``model``: every ``nn.ModuleList`` whose name ends in
    ``blocks`` (``encoder.blocks`` and ``decoder_blocks`` for the MAE)."""
    found = [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and name.split(".")[-1].endswith("blocks")
    ]
    if not found:
        raise ValueError(f"{type(model).__name__} has no nn.ModuleList named '*blocks' to wrap")
    return found


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """Replicate ``model`` with DistributedDataParallel (gradients averaged over ranks)."""
    from torch.nn.parallel import DistributedDataParallel

    if not is_initialized():
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def mixed_precision_policy(device: torch.device, bf16: bool):
    """FSDP2 policy: bf16 parameters with fp32 gradient reduction on CUDA; ``None`` otherwise."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type == "cuda" and bf16:
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return None


def shard_fsdp(model: nn.Module, mp_policy=None) -> nn.Module:
    """FSDP2: ``fully_shard`` every transformer block, then the root (in place).

    Each block's parameters are gathered just before it runs and freed after, so peak memory holds
    one block's full weights plus the shards. Gradients are reduce-scattered (averaged over ranks).

    Args:
        model: the MAE (or any module with ``*blocks`` module lists).
        mp_policy: a ``MixedPrecisionPolicy`` or ``None`` (parameters stay fp32).
    """
    from torch.distributed.fsdp import fully_shard

    kwargs = {} if mp_policy is None else {"mp_policy": mp_policy}
    for blocks in block_lists(model):
        for block in blocks:
            fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def _checkpointed_forward(forward, *args, **kwargs):
    from torch.utils.checkpoint import checkpoint

    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def apply_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Recompute every transformer block's activations in backward (in place).

    The block's ``forward`` is replaced on the instance, so parameter names and state-dict keys do
    not change. Apply before :func:`shard_fsdp` / :func:`wrap_ddp`.
    """
    for blocks in block_lists(model):
        for block in blocks:
            block.forward = functools.partial(_checkpointed_forward, block.forward)
    return model


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile`` each transformer block in place when ``enabled`` (names unchanged).

    Compiling per block keeps graphs small, composes with FSDP2 and activation checkpointing, and
    leaves the state dict keys as they were.
    """
    if enabled:
        for blocks in block_lists(model):
            for block in blocks:
                block.compile()
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DDP wrapper (FSDP2 shards in place, so it is its own root)."""
    return (
        model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
    )


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full (unsharded) CPU state dicts of ``model`` and ``optimizer``, keyed by parameter name.

    Collective under FSDP: every rank must call it; only rank 0 needs to write the result.
    """
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer, options=_options())


def load_full_state_dicts(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, model_state: dict, optim_state: dict
) -> None:
    """Load full state dicts written by :func:`full_state_dicts` into a (possibly sharded) model."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

    if optimizer is None:
        set_model_state_dict(model, model_state, options=_options())
    else:
        set_state_dict(
            model,
            optimizer,
            model_state_dict=model_state,
            optim_state_dict=optim_state,
            options=_options(),
        )
