"""torchrun support: process group setup, one device per process, sharded sums."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info_from_env(env: Mapping[str, str] = os.environ) -> DistInfo:
    """Where this process stands in torchrun's launch (one process when not launched by it)."""
    world_size = int(env.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    return DistInfo(int(env["RANK"]), world_size, int(env.get("LOCAL_RANK", "0")))


def pick_device(requested: str, info: DistInfo, cuda_devices: int) -> torch.device:
    """The device this process trains on: `requested` ("" = cuda when there is one), and
    under torchrun the GPU of this process's LOCAL_RANK (NCCL refuses two ranks on one GPU)."""
    device = torch.device(requested or ("cuda" if cuda_devices else "cpu"))
    if device.type != "cuda" or not info.enabled:
        return device
    if device.index is not None and device.index != info.local_rank:
        raise ValueError(f"--device {requested} names one GPU, but torchrun starts {info.world_size} processes; "
                         "use --device cuda: each process takes the GPU of its LOCAL_RANK")
    if cuda_devices == 1:  # a launcher (e.g. SLURM) that shows each process only its own GPU
        return torch.device("cuda", 0)
    if info.local_rank >= cuda_devices:
        raise ValueError(f"process with LOCAL_RANK {info.local_rank} has no GPU: this machine has {cuda_devices}; "
                         f"start at most {cuda_devices} processes per node (--nproc_per_node)")
    return torch.device("cuda", info.local_rank)


def process_group_backend(device_type: str) -> str:
    """NCCL for the CUDA tensors of training; gloo for CPU tensors and the CPU objects that
    gather_object sends (object collectives and barriers pick the CPU backend when there is one)."""
    return "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join torchrun's process group (nothing to do in one process). Call after pinning
    the process to its GPU (torch.cuda.set_device), so NCCL starts on the right one."""
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend=process_group_backend(device.type))


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over ranks (a no-op in one process). The tensor stays on the training device."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def gather_to_main(info: DistInfo):
    """A gather for evaluate_run: every rank's object, in rank order, on rank 0."""
    def gather(obj):
        if not info.enabled:
            return [obj]
        parts = [None] * info.world_size if info.is_main else None
        dist.gather_object(obj, parts, dst=0)
        return parts
    return gather
