"""Exponential moving averages of the weights, kept beside the trained ones.

A run of a thousand small, noisy steps from scratch ends wherever its last batches pushed it; an
average over its last few hundred steps is a flatter, often better-generalising point at no cost to
serving (the averaged weights have the same architecture). The trainer keeps one average per decay in
`run.ema_decays`, saves them in every checkpoint (a resumed run continues them) and the task writes
each beside the raw weights at the end, so both are evaluated from the same run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def ema_folder(decay: float) -> str:
    """Sub-folder of the run's output folder that holds the final weights averaged with `decay`."""
    return f"ema-{decay:g}"


class WeightAverage:
    """EMA of a module's state (parameters and floating buffers; integer buffers are copied).

    Until the decay is reached the average is the plain mean of every step's weights so far (the update
    after n others uses decay min(decay, n / (n + 1))): the first update takes that step's weights whole,
    so the random initial weights never enter the average. A warm-up such as (1 + n) / (10 + n) would
    hold the decay near 0.99 for the whole of a thousand-step run, whatever `decay` says.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.state: dict[str, torch.Tensor] = {
            name: tensor.detach().clone() for name, tensor in model.state_dict().items()
        }

    def current_decay(self) -> float:
        return min(self.decay, self.updates / (self.updates + 1.0))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward the model's current weights by 1 - current_decay()."""
        weight = 1.0 - self.current_decay()
        averaged: list[torch.Tensor] = []
        current: list[torch.Tensor] = []
        for name, tensor in model.state_dict().items():
            mine = self.state[name]
            if tensor.is_floating_point():
                averaged.append(mine)
                current.append(tensor.detach())
            else:
                mine.copy_(tensor)
        if averaged:
            torch._foreach_lerp_(averaged, current, weight)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        if float(saved["decay"]) != self.decay:
            raise ValueError(f"checkpoint holds an EMA with decay {saved['decay']}, not {self.decay}")
        missing = set(self.state) - set(saved["state"])
        if missing:
            raise ValueError(f"the checkpoint's EMA lacks {len(missing)} entries, e.g. {sorted(missing)[0]}")
        for name, tensor in saved["state"].items():
            if name in self.state:
                self.state[name].copy_(tensor)
        self.updates = int(saved["updates"])

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into `model` (same architecture)."""
        model.load_state_dict(self.state)
