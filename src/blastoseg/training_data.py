"""Training samples: where annotated images come from, and their augmentation.

Sources give normalised float32 images with their `Instances`: an endless stream of
synthetic embryos, a dataset folder, or pairs handed over in memory (napari layers).
`sample_batch` cuts random (object-centred) crops and applies D4, scale and intensity
augmentation, keeping the instances exact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from blastoseg import augment, framing
from blastoseg.instances import Instances
from blastoseg.io import as_model_wants, normalize, working_shape

Pair = tuple[np.ndarray, Instances]


@dataclass
class Augmentation:
    crop: int = 256
    scale_range: tuple[float, float] = (0.75, 1.33)
    object_centred: float = 0.7  # chance that a crop is centred on an object
    contrast_range: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.1
    noise: float = 0.03


class PairSource:
    """A fixed list of (image, instances) pairs, images normalised once."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        if not pairs:
            raise ValueError("no annotated images to train on; annotate at least one image first")
        self.pairs = [(normalize(np.asarray(img, np.float32)), inst) for img, inst in pairs]
        if not any(len(inst) for _, inst in self.pairs):
            raise ValueError("the annotations hold no instances; paint at least one cell before training")

    def draw(self, rng: np.random.Generator) -> Pair:
        return self.pairs[rng.integers(len(self.pairs))]

    def for_model(self, config: dict) -> PairSource:
        """The pairs as a model with this config sees them (`as_model_sees`)."""
        seen = PairSource.__new__(PairSource)
        seen.pairs = [as_model_sees(image, inst, config) for image, inst in self.pairs]
        return seen


class SyntheticSource:
    """Endless synthetic embryos (or seed 002 shapes), generated on the fly."""

    def __init__(self, kind: str = "embryo", size: int = 256, working_size: int | None = None, config: dict | None = None) -> None:
        if kind not in ("embryo", "shapes"):
            raise ValueError(f"unknown synthetic kind {kind!r}; choose 'embryo' or 'shapes'")
        self.kind, self.size = kind, size
        self.config = {**(config or {}), "working_size": working_size}

    def draw(self, rng: np.random.Generator) -> Pair:
        return as_model_sees(*self.frame(rng), self.config, rng)

    def frame(self, rng: np.random.Generator) -> Pair:
        """One normalised synthetic frame and its instances, before `as_model_sees`."""
        from blastoseg import synth

        if self.kind == "embryo":
            # The generator draws an embryo at any frame size. A framing model is shown a
            # window of a frame twice its working size, shrunk to it as camera frames are.
            side = self.config["working_size"] or self.size
            if self.config.get(framing.KEY):
                side = max(self.size, 2 * side)
            sample = synth.synth_embryo((side, side), seed=rng)
        else:  # the shapes protocol fixes the frame and object sizes: draw, then rescale
            sample = synth.synth_shapes(size=self.size, seed=rng)
        return normalize(sample.image), sample.instances

    def for_model(self, config: dict) -> SyntheticSource:
        """The same stream as a model with this config sees it (`as_model_sees`)."""
        return SyntheticSource(self.kind, self.size, config.get("working_size") or self.config["working_size"], config)


def as_model_sees(image: np.ndarray, instances: Instances, config: dict, rng: np.random.Generator | None = None) -> Pair:
    """A normalised pair as `predict` shows frames to a model with this config: framed
    around its objects (`framing`; jittered with `rng`), at its working size, and inverted
    if it asks for bright objects on a bright background."""
    if config.get(framing.KEY):
        image, instances = framing.framed(image, instances, float(config[framing.KEY]), rng)
    image, instances = to_working_size(image, instances, config.get("working_size"))
    return as_model_wants(image, config), instances


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
    from blastoseg.data import iter_dataset

    return PairSource([(item.image, item.instances) for item in iter_dataset(folder)])


def _crop_window(shape: tuple[int, int], size: int, instances: Instances, aug: Augmentation, rng: np.random.Generator) -> tuple[int, int]:
    h, w = shape
    if len(instances) and rng.random() < aug.object_centred:
        box = instances.boxes[rng.integers(len(instances))]
        cy, cx = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        y0, x0 = cy - size // 2 + rng.integers(-size // 4, size // 4 + 1), cx - size // 2 + rng.integers(-size // 4, size // 4 + 1)
    else:
        y0, x0 = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
    return int(np.clip(y0, 0, max(h - size, 0))), int(np.clip(x0, 0, max(w - size, 0)))


def augmented_crop(image: np.ndarray, instances: Instances, aug: Augmentation, rng: np.random.Generator) -> Pair:
    """One crop of side `aug.crop` with scale, D4 and intensity augmentation."""
    scale = float(np.exp(rng.uniform(*np.log(aug.scale_range))))
    size = max(int(round(aug.crop / scale)), 8)
    h, w = image.shape
    if h < size or w < size:  # pad small images; instances keep their coordinates
        ph, pw = max(size - h, 0), max(size - w, 0)
        image = np.pad(image, ((0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "constant")
        instances = instances.shifted(0, 0, image.shape)
    y0, x0 = _crop_window(image.shape, size, instances, aug, rng)
    crop = image[y0 : y0 + size, x0 : x0 + size]
    inst = instances.cropped(y0, x0, y0 + size, x0 + size)
    if size != aug.crop:
        crop = resize(crop, (aug.crop, aug.crop), order=1, anti_aliasing=scale < 1).astype(np.float32)
        inst = inst.resized((aug.crop, aug.crop))
    g = int(rng.integers(augment.N_TRANSFORMS))
    crop, inst = augment.numpy_transform(crop, g), augment.transform_instances(inst, g)
    crop = crop * rng.uniform(*aug.contrast_range) + rng.uniform(-aug.brightness, aug.brightness)
    crop = crop + rng.normal(0, rng.uniform(0, aug.noise), crop.shape)
    return crop.astype(np.float32), inst


def sample_batch(source: PairSource | SyntheticSource, batch: int, aug: Augmentation, rng: np.random.Generator) -> tuple[np.ndarray, list[Instances]]:
    """(B, 1, crop, crop) images and their instances."""
    images, instances = [], []
    for _ in range(batch):
        img, inst = augmented_crop(*source.draw(rng), aug, rng)
        images.append(img)
        instances.append(inst)
    return np.stack(images)[:, None], instances
