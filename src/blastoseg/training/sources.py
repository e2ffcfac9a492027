"""Where annotated training images come from.

Sources give normalised float32 images with their `Instances`: an endless stream of
synthetic embryos, a dataset folder, or pairs handed over in memory (napari layers),
each shown as a model with given pipeline settings sees its frames (`as_model_sees`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from skimage.transform import resize

from blastoseg.inference import framing
from blastoseg.inference.preprocess import as_model_wants, normalize, working_shape
from blastoseg.instances import FRAGMENT, Instances
from blastoseg.settings import PipelineSettings

Pair = tuple[np.ndarray, Instances]

# Share of synthetic embryos drawn as instruments acquire them (well views, cut and
# off-centre embryos, text, debris, JPEG, four modalities); the rest are clean crops,
# which keep the clean look and the full cell counts in view.
ACQUIRED = 0.75


class PairSource:
    """A fixed list of (image, instances) pairs, images normalised once."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        if not pairs:
            raise ValueError("no annotated images to train on; annotate at least one image first")
        self.pairs = [(normalize(np.asarray(img)), inst) for img, inst in pairs]
        if not any(len(inst) for _, inst in self.pairs):
            raise ValueError("the annotations hold no instances; paint at least one cell before training")

    def draw(self, rng: np.random.Generator) -> Pair:
        return self.pairs[rng.integers(len(self.pairs))]

    def for_model(self, settings: PipelineSettings) -> PairSource:
        """The pairs as a model with these settings sees them (`as_model_sees`)."""
        seen = PairSource.__new__(PairSource)
        seen.pairs = [as_model_sees(image, inst, settings) for image, inst in self.pairs]
        return seen


class SyntheticSource:
    """Endless synthetic embryos (or seed 002 shapes), generated on the fly."""

    def __init__(self, kind: str = "embryo", size: int = 256, settings: PipelineSettings | None = None) -> None:
        if kind not in ("embryo", "shapes"):
            raise ValueError(f"unknown synthetic kind {kind!r}; choose 'embryo' or 'shapes'")
        self.kind, self.size = kind, size
        self.settings = settings or PipelineSettings()

    def draw(self, rng: np.random.Generator) -> Pair:
        return as_model_sees(*self.frame(rng), self.settings, rng)

    def frame(self, rng: np.random.Generator) -> Pair:
        """One normalised synthetic frame and its instances, before `as_model_sees`."""
        from blastoseg import synth

        if self.kind == "embryo":
            # The generator draws an embryo at any frame size. A framing model is shown a
            # window of a frame twice its working size, shrunk to it as camera frames are.
            side = self.settings.working_size or self.size
            if self.settings.frame_fill:
                side = max(self.size, 2 * side)
            acquired = bool(rng.random() < ACQUIRED)
            sample = synth.synth_embryo((side, side), seed=rng, acquisition=acquired)
            return normalize(sample.image), with_fragments(sample.instances, sample.fragments)
        # The shapes protocol fixes the frame and object sizes: draw, then rescale.
        sample = synth.synth_shapes(size=self.size, seed=rng)
        return normalize(sample.image), sample.instances

    def for_model(self, settings: PipelineSettings) -> SyntheticSource:
        """The same stream as a model with these settings sees it (`as_model_sees`); a model
        without a working size takes the stream's."""
        if not settings.working_size:
            settings = settings.replaced(working_size=self.settings.working_size)
        return SyntheticSource(self.kind, self.size, settings)


def with_fragments(cells: Instances, fragments: np.ndarray) -> Instances:
    """The cells and, as class FRAGMENT behind them, each connected piece of a fragment
    mask (touching fragments become one)."""
    from scipy import ndimage

    pieces = Instances.from_label_image(ndimage.label(fragments)[0]) if fragments.any() else Instances.empty(cells.shape)
    behind = int(cells.depth.max()) + 1 if len(cells) else 0
    pieces = pieces.with_depth(np.full(len(pieces), behind)).with_class(FRAGMENT)
    return Instances.concatenate([cells, pieces])


def as_model_sees(image: np.ndarray, instances: Instances, settings: PipelineSettings, rng: np.random.Generator | None = None) -> Pair:
    """A normalised pair as `predict` shows frames to a model with this config: framed
    around its objects (`framing`; jittered with `rng`), at its working size, and inverted
    if it asks for bright objects on a bright background."""
    if settings.frame_fill:
        image, instances = framing.framed(image, instances, float(settings.frame_fill), rng)
    image, instances = to_working_size(image, instances, settings.working_size)
    return as_model_wants(image, settings), instances


def to_working_size(image: np.ndarray, instances: Instances, working_size: int | None) -> Pair:
    """A pair shrunk or grown as `predict` resizes frames for a model with `working_size`.

    Training must see objects at the scale inference gives them: a model that works on
    frames resized to 256 px learns nothing useful from crops of 1024 px frames.
    """
    shape = working_shape(image.shape, working_size)
    if shape == image.shape:
        return image, instances
    small = resize(image, shape, order=1, anti_aliasing=shape[0] < image.shape[0]).astype(np.float32)
    return small, instances.resized(shape)


def folder_source(folder: str | os.PathLike) -> PairSource:
    from blastoseg.training.datasets import iter_dataset

    return PairSource([(item.image, item.instances) for item in iter_dataset(folder)])
