"""A straight training run beside one stopped a step early and resumed, for the resume tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from training.trainer.loop import Trainer


def straight_and_resumed(
    build: Callable[[Path, int], Trainer], root: Path, steps: int
) -> tuple[Trainer, dict[str, float], Trainer]:
    """(the straight run after `steps` steps, its last step's losses, a run stopped after `steps - 1`
    steps and resumed from its checkpoint, not yet continued). `build(out, max_steps)` makes a trainer
    writing to `out`; validation is switched off so only training steps are compared."""
    straight = build(root / "a", steps)
    straight.val_set = None
    expected = straight.fit()[steps - 1]
    first = build(root / "b", steps - 1)
    first.val_set = None
    first.fit()
    resumed = build(root / "c", steps)
    resumed.val_set = None
    resumed.resume(root / "b" / "checkpoint_last.pt")
    return straight, expected, resumed
