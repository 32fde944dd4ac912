"""Data-parallel training under `torchrun`: process group set-up and small collectives.

`torchrun --nproc_per_node N -m asr.cli train ...` sets RANK, WORLD_SIZE and LOCAL_RANK;
without them everything here degrades to a single process with no communication.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from asr.inference import pick_device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (the tensor itself with one process)."""
        if self.enabled:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group. DDP's reference cycles keep it alive until a garbage
        collection; left to interpreter shutdown, gloo's threads can abort the process."""
        if self.enabled and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()


def init_distributed(device: str = "auto") -> Distributed:
    """Join the `torchrun` process group if there is one; pick this process's device.

    Under torchrun on GPUs each process takes `cuda:LOCAL_RANK` and NCCL; on CPU, gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(device=pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(rank, world_size, chosen)
