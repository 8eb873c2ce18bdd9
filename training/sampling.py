"""Epoch batch order that is the same for 1 or N processes, and resumable.

Each epoch draws one global order from (seed, epoch) alone; every global batch of
`batch_size` is split across ranks (rank r takes positions r, r+N, ...). With gradients
averaged by DDP, N processes then take the same steps as one process.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler[list[int]]):
    def __init__(self, labels: list[int], batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 balanced: bool = False, num_classes: int = 8):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} must be divisible by the {world_size} processes")
        self.labels = np.asarray(labels)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.weights = self._balanced_weights(num_classes) if balanced else None
        self.epoch = 0

    def _balanced_weights(self, num_classes: int) -> torch.Tensor:
        # Each class drawn equally often: weight 1 / (images of its class).
        counts = np.bincount(self.labels, minlength=num_classes).astype(float)
        return torch.as_tensor(1.0 / counts[self.labels], dtype=torch.float64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, len(self.labels), replacement=True, generator=generator)
        return torch.randperm(len(self.labels), generator=generator)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.global_order().tolist()
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):  # full batches only
            yield order[start:start + self.batch_size][self.rank::self.world_size]

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size
