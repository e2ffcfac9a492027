"""Training as a generator of progress events.

`train()` yields a `TrainEvent` after every step, so a caller (the CLI's progress bar,
napari's `thread_worker`) can show the loss, plot it and stop between steps by closing
the generator. Adam with a poly learning rate over the budget (steps or minutes); the
best model by validation AP is saved atomically after every validation. With
`ema_decay`, validation and the saved checkpoints use an exponential moving average
of the weights (and batch-norm statistics) instead of the last step's. A method whose
config has a `pretrain_fraction` first spends up to that share of the budget in its
`pretrain` stage (its steps are events too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import numbers
import os
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from blastoseg import checkpoint, d4, limits
from blastoseg.device import resolve_device
from blastoseg.inference import object_size
from blastoseg.instances import CELL, Instances
from blastoseg.model import Model
from blastoseg.settings import PipelineSettings
from blastoseg.training.augmentation import Augmentation, sample_batch
from blastoseg.training.divergence import LossWatch, check_weights, kept_note
from blastoseg.training.sources import PairSource, SyntheticSource, as_model_sees


@dataclass
class TrainEvent:
    step: int
    fraction: float  # of the budget used
    losses: dict[str, float]
    elapsed: float  # seconds
    eta: float  # seconds left
    lr: float
    validation: float | None = None  # AP_dsb@0.5 on the validation pairs (0..1), when just measured
    validation_last: float | None = None  # the same for the last step's weights, when averaging
    best: float | None = None  # the best validation so far (0..1), on every event; None before one
    saved: Path | None = None
    parent: float | None = None  # a fine-tune's parent model on the same validation pairs

    def as_dict(self) -> dict[str, float | int | None]:
        """One JSON-ready log line: step, seconds, learning rate, loss terms, validation."""
        return {"step": self.step, "elapsed": round(self.elapsed), "lr": round(self.lr, 6),
                **{k: round(v, 4) for k, v in self.losses.items()}, "val_ap50": self.validation,
                **({"val_ap50_last": self.validation_last} if self.validation_last is not None else {}), "best": self.best,
                **({"parent": self.parent} if self.parent is not None else {})}


@dataclass
class Budget:
    """Steps, or minutes of wall clock; with clock="cpu", minutes of the process's CPU time
    (all threads together), which other programs on the machine cannot eat into and which
    never exceeds the wall-clock minutes of a run that keeps at least one core busy."""

    steps: int | None = None
    minutes: float | None = None
    clock: str = "wall"

    def __post_init__(self) -> None:
        self._cpu_start = time.process_time()
        if (self.steps is None) == (self.minutes is None):
            raise ValueError("give a training budget as either a number of steps or of minutes")
        if (self.steps is not None and self.steps < 1) or (self.minutes is not None and not 0 < self.minutes < math.inf):
            raise ValueError(f"the training budget must be positive; got {self.steps if self.minutes is None else self.minutes}")

    def fraction(self, step: int, elapsed: float) -> float:
        if self.steps is not None:
            return min(step / self.steps, 1.0)
        if self.clock == "cpu":
            elapsed = time.process_time() - self._cpu_start
        return min(elapsed / (60 * self.minutes), 1.0)


MIN_CROP = 16


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class TrainOptions:
    budget: Budget
    batch: int = 8
    lr: float = 5e-4
    augmentation: Augmentation = field(default_factory=Augmentation)
    validate_every: int = 100  # steps
    seed: int = 0
    device: str = "auto"
    description: str = ""  # training data and command, stored in the checkpoint
    ema_decay: float | None = None  # average the weights over ~1 / (1 - decay) steps
    # Save only a model that validates better than the starting weights: resuming must not
    # replace a good checkpoint with a worse one.
    keep_better: bool = False

    def __post_init__(self) -> None:
        if not _whole(self.batch) or self.batch < 1:
            raise ValueError(f"the batch size must be a whole number of at least 1; got {self.batch}")
        if not (math.isfinite(self.lr) and self.lr >= 0):  # 0 is allowed: it measures the start unchanged
            raise ValueError(f"the learning rate must be a number >= 0, e.g. 1e-3; got {self.lr}")
        if not _whole(self.validate_every) or self.validate_every < 1:
            raise ValueError(f"validate every 1 or more steps; got {self.validate_every}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"the weight-average decay must lie between 0 and 1, e.g. 0.999; got {self.ema_decay}")
        crop = self.augmentation.crop
        if not _whole(crop) or crop < MIN_CROP:
            raise ValueError(f"the training crop must be at least {MIN_CROP} pixels; got {crop}")
        limits.check_pixels((self.batch, crop, crop), f"a training batch of {self.batch} crops of {crop} px",
                            remedy="choose a smaller crop or batch")


def weight_average(net: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of `net`'s weights and buffers. Its decay ramps up
    from 0 ((1 + n) / (10 + n) after n updates), so that a short fine-tune is not
    dominated by its starting weights."""

    def blend(average: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        return average * d + current * (1 - d)

    return torch.optim.swa_utils.AveragedModel(net, avg_fn=blend, use_buffers=True)


def in_view(image: np.ndarray, truth: Instances, index: int) -> tuple[np.ndarray, Instances]:
    """A validation pair turned by D4 element `index` mod 8.

    Validation scores one view, and the best checkpoint is kept: with every pair upright,
    that choice can only favour the upright view, the one a user's frame is segmented in
    without TTA. (The DSB EmbedSeg model chosen so scored AP_dsb@0.5 0.877 upright on 45
    held-out images it was not validated on, 0.866-0.874 in the seven other views, and
    8-fold TTA, which averages all eight, fell behind the upright view.) Spread over the
    views, the choice favours none.
    """
    g = index % d4.N_TRANSFORMS
    return d4.numpy_transform(image, g), d4.transform_instances(truth, g)


def validate(model: Model, pairs: Sequence[tuple[np.ndarray, Instances]], device: torch.device) -> float:
    """Mean AP_dsb@0.5 without TTA on the validation pairs (targets as the method sees them)."""
    from blastoseg.inference.predict import Predictor
    from blastoseg.metrics import ap_dsb

    model.net.eval()
    predictor = Predictor(model, tta=False, device=device)
    scores = []
    for image, truth in pairs:
        found, truth = predictor.segment_tile(image).of_class(CELL), truth.of_class(CELL)  # AP of the cells
        scores.append(ap_dsb(found, truth if model.method.amodal else truth.visible(), 0.5))
    model.__dict__.pop("_inference_nets", None)  # the weights change: drop the fused copy
    return float(np.mean(scores)) if scores else float("nan")


SIZE_SAMPLES = 64  # synthetic images drawn to measure the object sizes of an endless source


def training_sizes(settings: PipelineSettings, source: PairSource | SyntheticSource) -> PipelineSettings:
    """`settings` with the object sizes the training images show (`object_diameters`, see
    `object_size`). A fine-tuned model keeps the range it knew and learns the new one: the
    union of both."""
    if isinstance(source, PairSource):
        sets = [instances.of_class(CELL) for _, instances in source.pairs]
    else:  # a fixed seed: the record does not depend on the training stream
        rng = np.random.default_rng(0)
        sets = [source.draw(rng)[1].of_class(CELL) for _ in range(SIZE_SAMPLES)]
    sizes = object_size.training_sizes(sets)
    if settings.object_diameters:
        known = settings.object_diameters["range"]
        sizes["range"] = [min(known[0], sizes["range"][0]), max(known[1], sizes["range"][1])]
    return settings.replaced(object_diameters=sizes)


def train(
    model: Model,
    source: PairSource | SyntheticSource,
    options: TrainOptions,
    output: str | os.PathLike,
    validation: Sequence[tuple[np.ndarray, Instances]] = (),
) -> Generator[TrainEvent, None, Model]:
    """Train `model` in place, yielding an event per step; returns the model at the end.

    The best checkpoint (by validation, or the last one without validation pairs) is
    written to `output` after every validation, so stopping early keeps it. A fine-tune
    (a model with a `parent` record) first scores its parent on the validation pairs; the
    checkpoint records that score and whether the fine-tuned state beats it. With
    `options.keep_better`, the starting weights are validated first and only a better
    model is saved. A loss or weight that turns NaN or infinite stops training with
    `TrainingDiverged` before anything broken is saved.
    """
    output = Path(output)
    existed = output.exists()
    device = resolve_device(options.device)
    multiple = int(getattr(model.net, "multiple", 1))
    if options.augmentation.crop % multiple:
        raise ValueError(f"the training crop must be a multiple of {multiple} pixels for this network; got "
                         f"{options.augmentation.crop} (e.g. {max(multiple, options.augmentation.crop // multiple * multiple)})")
    rng = np.random.default_rng(options.seed)
    torch.manual_seed(options.seed)
    method, config = model.method, model.config
    source = source.for_model(model.pipeline)
    model.pipeline = training_sizes(model.pipeline, source)
    validation = [in_view(*as_model_sees(image, truth, model.pipeline), i) for i, (image, truth) in enumerate(validation)]
    net = model.net.to(device)
    # The starting weights, scored once: a fine-tune's parent, or the model a resume must beat.
    wanted = validation and ("parent" in model.metadata or options.keep_better)
    start_score = validate(model, validation, device) if wanted else None
    parent = start_score if "parent" in model.metadata else None
    optimiser = torch.optim.Adam(net.parameters(), lr=options.lr)
    best = start_score if options.keep_better else None
    saved_step: int | None = None
    start = time.perf_counter()
    step, fraction = 0, 0.0
    share = min(float(config.get("pretrain_fraction", 0.0)), 0.9)
    if share > 0:  # e.g. a shape prior fitted on the masks before the network
        batches = (sample_batch(source, options.batch, options.augmentation, rng)[1] for _ in itertools.count())
        watch = LossWatch(options.lr)
        with contextlib.closing(method.pretrain(model, batches, device)) as stages:
            for values in stages:
                step += 1
                watch.check(values, step, kept_note(output, saved_step, existed))
                elapsed = time.perf_counter() - start
                fraction = options.budget.fraction(step, elapsed)
                yield TrainEvent(step, fraction, values, elapsed, elapsed / max(fraction, 1e-9) - elapsed, 0.0)
                if fraction >= share:
                    break
    first = fraction  # the learning rate decays over the budget left after pre-training
    # The average starts after pre-training, which may replace modules (vqshape's VQ-VAE).
    average = weight_average(net, options.ema_decay) if options.ema_decay else None
    scored = dataclasses.replace(model, net=average.module) if average else model  # shares config and metadata
    watch = LossWatch(options.lr)
    while fraction < 1.0:
        lr = options.lr * (1 - (fraction - first) / (1 - first)) ** 0.9
        for group in optimiser.param_groups:
            group["lr"] = lr
        images, instances = sample_batch(source, options.batch, options.augmentation, rng)
        # A method with a schedule over training (FCRNet's alpha) sees where training is.
        step_config = method.on_progress(config, fraction)
        if not method.finds_fragments(step_config):  # fragments are not cells: leave them out
            instances = [inst.of_class(CELL) for inst in instances]
        targets = method.collate([method.targets(inst, step_config) for inst in instances])
        net.train()
        losses = method.training_loss(net, torch.from_numpy(images).to(device), targets, step_config)
        values = {k: float(v.detach()) for k, v in losses.items()}
        # Before the step: a NaN gradient would turn every weight into NaN.
        watch.check(values, step + 1, kept_note(output, saved_step, existed))
        optimiser.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimiser.step()
        if average:
            average.update_parameters(net)
        step += 1
        elapsed = time.perf_counter() - start
        fraction = options.budget.fraction(step, elapsed)
        event = TrainEvent(step, fraction, values, elapsed, elapsed / max(fraction, 1e-9) - elapsed, lr)
        event.parent = parent
        if step % options.validate_every == 0 or fraction >= 1.0:
            check_weights(scored.net, step, options.lr, kept_note(output, saved_step, existed))
            score = validate(scored, validation, device) if validation else None
            event.validation = score
            if average and validation:
                event.validation_last = validate(model, validation, device)
            # Without validation: the latest. A later model as good as the best is kept; one
            # only as good as the starting weights (keep_better) is not.
            if score is None or best is None or score > best or (score == best and saved_step is not None):
                best = score
                record = {"description": options.description, "steps": step, "seconds": round(elapsed, 1),
                          "batch": options.batch, "crop": options.augmentation.crop, "lr": options.lr,
                          "validation_ap50": score, "ema_decay": options.ema_decay}
                if parent is not None:
                    record |= {"parent_validation_ap50": round(parent, 4), "beats_parent": bool(score > parent)}
                model.metadata.update(training=record)
                event.saved = checkpoint.save(scored, output)
                saved_step = step
        event.best = best
        yield event
    if average:  # the caller gets the averaged weights, as saved
        net.load_state_dict(average.module.state_dict())
    return model
