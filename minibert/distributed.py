"""Several GPUs (or CPU processes) under `torchrun`: the process group, and a check that every rank ended equal.

What it does:
- `init_distributed()`: under torchrun (RANK and WORLD_SIZE set), start the process group (nccl on GPUs, gloo on
  CPUs) and return (rank, world_size, local_rank); a single process gets (0, 1, 0).
- `is_distributed()`: more than one process is training.
- `check_ranks_agree(trainer)`: DistributedDataParallel keeps every rank's weights equal; a cheap checksum says so.
  The Trainer (minibert.training) does the rest: a `DistributedSampler` shard of the data per rank (ResumableSampler
  in minibert.resume), gradients averaged by DDP, and only rank 0 writing and printing.

What it leaves out: FSDP/ZeRO sharding, several machines' launch scripts, and TPUs.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int, int]:
    """Under torchrun (RANK and WORLD_SIZE set): start the process group, gloo on CPU, nccl on GPUs.
    Returns (rank, world_size, local_rank); (0, 1, 0) for a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        gpus = torch.cuda.is_available() and os.environ.get("MINIBERT_DEVICE", "cuda").startswith("cuda")
        if gpus:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if gpus else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def check_ranks_agree(trainer) -> None:
    """DDP keeps every rank's weights equal; check it (a cheap checksum) and say so."""
    checksum = torch.tensor([sum(p.detach().double().sum().item() for p in trainer.model.parameters())],
                            device=trainer.device, dtype=torch.float64)
    sums = [torch.zeros_like(checksum) for _ in range(trainer.world_size)]
    dist.all_gather(sums, checksum)
    values = [s.item() for s in sums]
    if max(values) != min(values):
        raise RuntimeError(f"the ranks' weights differ after training (checksums {values})")
    if trainer.is_main:
        print(f"all {trainer.world_size} ranks agree on the weights (checksum {values[0]:.6f})")

# -------------------------------------------------------------- checkpoints
