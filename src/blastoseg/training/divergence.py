"""Stopping training that has diverged, before it can save a broken model.

A learning rate far too high, or NaN / infinite pixels reaching the network, turn the
loss and then every weight into NaN. Such a model finds nothing, and used to be saved
over the last good one while the command reported success. Training checks each step's
losses and, before every save, the weights it would save.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch


class TrainingDiverged(ValueError):
    """The loss or the weights became NaN or infinite; nothing broken was saved."""


def _advice(lr: float, kept: str) -> str:
    return (f"The learning rate ({lr:g}) is the likely cause: try one 10 times lower. Otherwise check the "
            f"training images for NaN or infinite pixels. {kept}")


def kept_note(output: Path, saved_step: int | None, existed: bool) -> str:
    """What is on disk now: the last good checkpoint, the file as it was, or nothing."""
    if saved_step is not None:
        return f"The model saved at step {saved_step} is kept in {output}."
    if existed:
        return f"{output} is left as it was."
    return "No model was written."


# A total loss this many times its first value (or 1) is diverging: the next steps give
# NaN. Losses of a healthy run fall, or rise a few fold at most when a schedule shifts.
EXPLODED = 1e4


class LossWatch:
    """Each step's losses of one training stage, against the stage's first total."""

    def __init__(self, lr: float) -> None:
        self.lr, self.first = lr, None

    def check(self, losses: Mapping[str, float], step: int, kept: str) -> None:
        """Raise TrainingDiverged when a loss term of `step` is NaN or infinite, or the
        total has grown EXPLODED-fold."""
        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if bad:
            terms = ", ".join(f"{name} {value}" for name, value in bad.items())
            raise TrainingDiverged(f"training stopped at step {step}: the loss is not finite ({terms}). {_advice(self.lr, kept)}")
        total = losses.get("total")
        if total is None:
            return
        if self.first is None:
            self.first = abs(total)
        elif abs(total) > EXPLODED * max(self.first, 1.0):
            raise TrainingDiverged(f"training stopped at step {step}: the loss grew from {self.first:.3g} to {total:.3g}. "
                                   f"{_advice(self.lr, kept)}")


def check_weights(net: torch.nn.Module, step: int, lr: float, kept: str) -> None:
    """Raise TrainingDiverged when a weight or buffer of `net` is NaN or infinite."""
    for name, value in net.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise TrainingDiverged(f"training stopped at step {step}: weight {name} is NaN or infinite. {_advice(lr, kept)}")
