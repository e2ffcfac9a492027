"""Fine-tuning on a user's few frames without forgetting: replay, validation, the parent to beat.

A model trained on thousands of synthetic embryos and then shown two corrected frames
forgets what it knew (many small cells, other looks) within minutes. Three things stop
that, the same for the command line and napari:
- replay: a share of the training crops comes from the parent's own kind of data
  (synthetic embryos for the embryo models), the rest from the user's frames;
- a learning rate for fine-tuning, lower than from scratch (`Method.finetune_lr`);
- validation that sees both: the user's held-out frames (or, with one or two frames,
  those frames in the other D4 views) and as many replayed frames, so a state that fits
  the user's frames by forgetting everything else does not score higher. The parent is
  validated first on the same pairs; training keeps the best state and says whether it
  beats the parent (`train` records `parent_validation` and `beats_parent`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from blastoseg.inference.preprocess import normalize
from blastoseg.model import Model
from blastoseg.settings import PipelineSettings
from blastoseg.training.sources import Pair, PairSource, SyntheticSource

REPLAY = 0.5  # share of training crops drawn from the parent's kind of data
HOLD_OUT_FROM = 3  # with this many frames or more, whole frames are held out for validation
HOLD_OUT_SHARE = 0.2  # of the frames, at least one
VALIDATION_PER_SIDE = 8  # validation pairs from the user's frames, and as many replayed


class MixedSource:
    """The user's pairs, mixed with replayed frames drawn with probability `share`."""

    def __init__(self, user: PairSource, replay: SyntheticSource | None, share: float = REPLAY) -> None:
        if not 0 <= share < 1:
            raise ValueError(f"the replay share must be in [0, 1); got {share}")
        self.user, self.replay, self.share = user, replay, share if replay is not None else 0.0

    @property
    def pairs(self) -> list[Pair]:
        return self.user.pairs

    def draw(self, rng: np.random.Generator) -> Pair:
        if self.replay is not None and rng.random() < self.share:
            return self.replay.draw(rng)
        return self.user.draw(rng)

    def for_model(self, settings: PipelineSettings) -> MixedSource:
        replay = None if self.replay is None else self.replay.for_model(settings)
        return MixedSource(self.user.for_model(settings), replay, self.share)


@dataclass(frozen=True)
class Plan:
    """What a fine-tune trains on and validates with."""

    source: MixedSource
    validation: list[Pair]
    held_out: int  # user frames kept out of training (0: validated in other views)

    def describe(self) -> str:
        user = len(self.source.pairs)
        how = f"{self.held_out} held-out frame(s)" if self.held_out else f"{user} frame(s) in the other D4 views"
        replay = f", {self.source.share:.0%} replayed synthetic embryos" if self.source.replay is not None else ""
        return f"{user} training frame(s){replay}; validated on {how}" + (" and as many synthetic embryos" if replay else "")


def replay_for(model: Model) -> SyntheticSource | None:
    """The parent's own kind of training data: synthetic embryos for an embryo model (one
    with a working size); none for the nuclei models."""
    return SyntheticSource("embryo") if model.pipeline.working_size else None


def plan(model: Model, pairs: Sequence[Pair], replay: float = REPLAY) -> Plan:
    """Training source and validation pairs for fine-tuning `model` on `pairs`."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no annotated frames to fine-tune on; correct at least one frame first")
    held = max(1, round(HOLD_OUT_SHARE * len(pairs))) if len(pairs) >= HOLD_OUT_FROM else 0
    train_pairs, held_pairs = (pairs[:-held], pairs[-held:]) if held else (pairs, pairs)
    held_pairs = [(normalize(np.asarray(image, np.float32)), truth) for image, truth in held_pairs]
    user_val = [held_pairs[k % len(held_pairs)] for k in range(max(VALIDATION_PER_SIDE, len(held_pairs)))]
    replayed = replay_for(model) if replay > 0 else None
    validation = user_val
    if replayed is not None:
        rng = np.random.default_rng(12345)  # the same replay frames for the parent and every state
        source = replayed.for_model(model.pipeline)
        # `train.in_view` turns pair i by D4 element i mod 8: user frames at odd places are
        # seen in the four views other than the upright one they mostly train in.
        validation = [pair for user in user_val for pair in (source.frame(rng), user)]
    return Plan(MixedSource(PairSource(train_pairs), replayed, replay), validation, held)
