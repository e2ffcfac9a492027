"""Training crops: random (object-centred) crops with D4, scale and intensity augmentation,
keeping the instances exact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from blastoseg import d4
from blastoseg.instances import Instances
from blastoseg.training.sources import Pair, PairSource, SyntheticSource


@dataclass
class Augmentation:
    crop: int = 256
    scale_range: tuple[float, float] = (0.75, 1.33)
    object_centred: float = 0.7  # chance that a crop is centred on an object
    contrast_range: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.1
    noise: float = 0.03


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
    g = int(rng.integers(d4.N_TRANSFORMS))
    crop, inst = d4.numpy_transform(crop, g), d4.transform_instances(inst, g)
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
