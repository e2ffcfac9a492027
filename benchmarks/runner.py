"""Training and tuning as the benchmarks run them.

`run_training` drives `training.train.train` and prints its progress as JSON lines on
stderr, so that stdout holds only a recipe's final report; `tune_and_save` chooses a saved
model's post-processing thresholds (`training.tune`) and writes them back into its file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blastoseg.instances import Instances

if TYPE_CHECKING:
    from blastoseg.model import Model
    from blastoseg.training.sources import PairSource, SyntheticSource
    from blastoseg.training.train import Budget, TrainEvent, TrainOptions


def log(**fields: Any) -> None:
    """One progress line: a JSON object on stderr."""
    print(json.dumps(fields), file=sys.stderr, flush=True)


def recipe_command(recipe: str) -> str:
    """The command line that ran benchmark `recipe`, for the checkpoint's training record."""
    return f"python -m benchmarks.{recipe} {shlex.join(sys.argv[1:])}".rstrip()


def add_budget_arguments(parser: argparse.ArgumentParser, minutes: float, help: str | None = None) -> None:
    """--minutes (default `minutes`), --clock and --steps, read by `budget`."""
    parser.add_argument("--minutes", type=float, default=minutes, help=help)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu", help="budget in wall-clock or process CPU minutes")
    parser.add_argument("--steps", type=int, default=None, help="a budget of this many steps instead of minutes (smoke runs)")


def budget(args: argparse.Namespace) -> Budget:
    """The training budget of `add_budget_arguments`' flags."""
    from blastoseg.training.train import Budget

    if getattr(args, "steps", None):
        return Budget(steps=args.steps)
    return Budget(minutes=args.minutes, clock=args.clock)


def starting_model(method: str, config: Mapping[str, Any], init: str | None) -> Model:
    """A new `method` model with `config`, or, with `init`, that checkpoint to fine-tune."""
    from blastoseg.checkpoint import fine_tune_start
    from blastoseg.model import new_model

    return fine_tune_start(init, device="cpu") if init else new_model(method, dict(config))


@dataclass
class Trained:
    model: Model  # the last step's weights (the averaged ones with weight averaging)
    best: float | None  # the best validation score, the one saved
    steps: int
    path: Path  # the best checkpoint


def run_training(
    model: Model,
    source: PairSource | SyntheticSource,
    options: TrainOptions,
    output: str | os.PathLike,
    validation: Sequence[tuple[np.ndarray, Instances]] = (),
    every: int = 20,
    fields: Mapping[str, Any] | None = None,
    extra: Callable[[TrainEvent], Mapping[str, Any]] | None = None,
) -> Trained:
    """Train `model` (in place) to `output`, logging every `every` steps and every validation.

    Each line is `fields` (e.g. which variant), the event and whatever `extra` adds for it."""
    from blastoseg.training.train import train

    best, step = None, 0
    for event in train(model, source, options, output, validation=validation):
        best, step = event.best if event.best is not None else best, event.step
        if event.step % every == 0 or event.validation is not None:
            log(**(fields or {}), **event.as_dict(), **(extra(event) if extra else {}))
    return Trained(model, best, step, Path(output))


def tune_and_save(name_or_path: str | os.PathLike, items: Sequence[tuple[np.ndarray, Instances]], tta: bool, device: str,
                  source: str) -> dict[str, Any]:
    """Choose the model's post-processing thresholds on held-out `items` (`training.tune`) and
    save them into its file; a modal method is scored on the visible truth."""
    from blastoseg import checkpoint
    from blastoseg.training.tune import tune_thresholds

    model = checkpoint.load(name_or_path, device=device)
    if not model.method.amodal:
        items = [(image, truth.visible()) for image, truth in items]
    chosen = tune_thresholds(model, items, tta, device, source)
    checkpoint.save(model, model.path)
    return chosen
