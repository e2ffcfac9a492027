"""segment(): image -> Instances, with 8-fold test-time augmentation and tiling.

The 8 dihedral views of a tile run as one batch. Their raw maps are turned back (vector
channels as vectors) and then merged by the method's rule: "fields" averages the maps
and post-processes once; "instances" post-processes every view and keeps the
consensus (`merging`). Every instance's score is the agreement between the views. A
`Detector` gives instances per view directly; they are turned back and merged by the
same consensus.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from skimage.transform import resize

from blastoseg import d4
from blastoseg.catalogue import default_model_name
from blastoseg.checkpoint import load
from blastoseg.device import resolve_device
from blastoseg.inference import framing, object_size
from blastoseg.inference.embryo import Embryo
from blastoseg.inference.localise import find_embryo
from blastoseg.inference.merging import agreed, merge_views
from blastoseg.inference.plausible import plausible_cells, plausible_fragments
from blastoseg.inference.preprocess import (
    as_array,
    as_frames,
    model_input,
    working_shape,
)
from blastoseg.inference.tiling import plan_tiles, segment_tiled
from blastoseg.instances import CELL, FRAGMENT, Instances
from blastoseg.methods.base import Detector
from blastoseg.model import Model
from blastoseg.nets.unet import fuse_batchnorm
from blastoseg.settings import PipelineSettings, method_tta_settings

Progress = Callable[[int, int], None]
UNTILED_MAX_PIXELS = 1024 * 1024
AUTO_TILE = 1024
MIN_SIDE = 32  # the smallest tile `_tiling` accepts: frames are never shrunk below it
# Half the side of the square that frames an embryo's cells, as a share of the zona's inner
# radius: the cells fill the space inside the zona but for the perivitelline gap. Chosen
# on synthetic acquisitions (docs/benchmarks.md); None frames them by a quick pass instead.
CELLS_SHARE: float | None = 0.9


def _inference_net(model: Model, device: torch.device) -> torch.nn.Module:
    """An eval-mode, BatchNorm-fused, channels_last copy of the network, made once per device."""
    cache = model.__dict__.setdefault("_inference_nets", {})
    if str(device) not in cache:
        net = fuse_batchnorm(copy.deepcopy(model.net).eval())
        cache[str(device)] = net.to(device).to(memory_format=torch.channels_last)
    return cache[str(device)]


def _pad(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape
    th, tw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    return np.pad(image, ((0, th - h), (0, tw - w)), mode="reflect" if min(h, w) > 1 else "edge")


def _batches(shape: tuple[int, int], tta: bool) -> list[list[int]]:
    """The D4 views to run, grouped so that each group has one spatial shape."""
    if not tta:
        return [[0]]
    if shape[0] == shape[1]:
        return [list(range(d4.N_TRANSFORMS))]
    # Quarter turns swap height and width. Padding the tile square instead would mirror
    # the objects on its edge into doubled ones that no view had seen in training.
    return [[g for g in range(d4.N_TRANSFORMS) if g % 2 == parity] for parity in (0, 1)]


class Predictor:
    """Runs one model on 2D tiles; holds the device and options so tiles share them."""

    def __init__(self, model: Model, tta: bool, device: torch.device, bf16: bool = False) -> None:
        self.model, self.tta, self.device, self.bf16 = model, tta, device, bf16
        self.net = _inference_net(model, device)
        self.multiple = int(getattr(self.net, "multiple", 1))
        self.views_done = 0
        self.on_view: Callable[[int], None] | None = None

    @property
    def n_views(self) -> int:
        return d4.N_TRANSFORMS if self.tta else 1

    @property
    def config(self) -> dict:
        """The method's settings; with TTA, those the pipeline's `tta_settings` replace: views
        merged by consensus can take a laxer score threshold, say, than a single view can."""
        config = self.model.config
        return {**config, **method_tta_settings(self.model.pipeline)} if self.tta else config

    @property
    def pipeline(self) -> PipelineSettings:
        """The pipeline settings, with TTA those its `tta_settings` replace."""
        return self.model.pipeline.with_tta() if self.tta else self.model.pipeline

    def _each_view(self, tile: np.ndarray, run: Callable[[torch.Tensor], Sequence]) -> list:
        """`run` on the tile's padded views (8 with TTA, else 1), a memory-bounded batch at a
        time; its per-view results in D4 order."""
        padded = torch.from_numpy(_pad(tile, self.multiple)).float()[None, None]
        chunk = 8 if max(padded.shape[-2:]) <= 512 else 2  # bounds activation memory
        results: dict[int, object] = {}
        for group in _batches(tuple(padded.shape[-2:]), self.tta):
            for i in range(0, len(group), chunk):
                views = group[i : i + chunk]
                batch = torch.cat([d4.transform(padded, g) for g in views]).to(self.device)
                with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    results.update(zip(views, run(batch.contiguous(memory_format=torch.channels_last))))
        self.views_done += self.n_views
        if self.on_view is not None:
            self.on_view(self.views_done)
        return [results[g] for g in sorted(results)]

    def view_maps(self, tile: np.ndarray) -> torch.Tensor:
        """(V, C, h, w) activated maps of the tile's views, turned back to the tile's frame."""
        h, w = tile.shape
        method, config = self.model.method, self.config
        maps = self._each_view(tile, lambda batch: method.activate(self.net(batch).float(), config))
        return torch.stack([d4.inverse(m, g, method.layout)[:, :h, :w] for g, m in enumerate(maps)])

    def view_instances(self, tile: np.ndarray) -> list[Instances]:
        """Instances found by a method's `detect` hook in each view, turned back to the tile's frame."""
        h, w = tile.shape
        method, config = self.model.method, self.config
        found = self._each_view(tile, lambda batch: method.detect(self.net, batch, config))
        # Every D4 reflection is its own inverse; a quarter turn k is undone by 4 - k.
        undo = [g if g >= 4 else (4 - g) % 4 for g in range(len(found))]
        return [d4.transform_instances(f, u).cropped(0, 0, h, w) for f, u in zip(found, undo)]

    def segment_tile(self, tile: np.ndarray) -> Instances:
        method, votes = self.model.method, self.pipeline.tta_min_votes
        if isinstance(method, Detector):
            return agreed(self.view_instances(tile), votes)
        return merge_views(method, self.view_maps(tile), self.config, votes)


def _as_model(model: Model | str | os.PathLike | None, device: str | torch.device) -> Model:
    """A loaded model; None is the default model every door uses (`catalogue.DEFAULT_MODEL`)."""
    if isinstance(model, Model):
        return model
    return load(default_model_name() if model is None else model, device=device)


def _tiling(shape: tuple[int, int], tile: int | None, settings: PipelineSettings) -> tuple[int, int]:
    if tile is None:
        tile = max(shape) if shape[0] * shape[1] <= UNTILED_MAX_PIXELS else AUTO_TILE
    if tile < MIN_SIDE:
        raise ValueError(f"tile size {tile} is too small; use at least {MIN_SIDE} pixels, or leave it on auto")
    overlap = min(int(settings.tile_overlap), tile // 2 - 1)
    return tile, overlap


def _check_flags(**flags: object) -> None:
    """Refuse a switch given as anything but a bool: tta="no" is truthy and would run TTA."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {value!r}")


def to_frame_size(found: Instances, shape: tuple[int, int]) -> Instances:
    """Instances found on a resized frame, brought back to the frame's `shape`.

    Masks found at a working size smaller than the frame are enlarged smoothly
    (`Instances.resized(smooth=True)`): nearest-neighbour enlargement made the outlines
    of masks found at a 160 px working size step by several pixels on an 800 px frame,
    and gave round cells a circularity of 0.61-0.66 where the same cells drawn by hand
    measure 0.88-0.90.
    """
    return found if tuple(shape) == found.shape else found.resized(shape, smooth=True)


@dataclass(frozen=True)
class FrameResult:
    """What one frame gives: its cells, the embryo (zona) they were found in if localised,
    and its fragments if the model finds them."""

    cells: Instances
    embryo: Embryo | None = None
    fragments: Instances | None = None


def analyse_frames(
    image: np.ndarray,
    model: Model | str | os.PathLike | None = None,
    tta: bool = True,
    tile: int | None = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    bf16: bool = False,
    auto_scale: bool = True,
) -> list[FrameResult]:
    """Segment a 2D frame or a (T, H, W) time-lapse, frame by frame: one result per frame.

    A model that localises embryos (`localise_embryo`) first finds the zona pellucida,
    segments the window around it and keeps the cells inside it. Where no zona is found,
    or for other models with a `frame_fill`, a quick pass without TTA finds the objects
    and the window around them is segmented, where they appear at the scale the model
    was trained at (`framing`).

    With `auto_scale`, a frame whose objects are far larger than the model's training
    objects is segmented again, shrunk to bring them into the training range
    (`object_size`); each frame of a stack is judged on its own, so one frame may be
    segmented at another scale than its neighbours. `progress(done, total)` counts network
    passes: frames x tiles x TTA views, plus the passes of any frame segmented again.
    """
    _check_flags(tta=tta, auto_scale=auto_scale, bf16=bf16)
    frames = as_frames(image)
    device = resolve_device(device)
    model = _as_model(model, device)
    predictor = Predictor(model, tta, device, bf16=bf16)
    settings = model.pipeline
    fill = settings.frame_fill
    working = working_shape(frames.shape[1:], settings.working_size)
    user_tile = tile if working == frames.shape[1:] else None

    def passes_at(shape: tuple[int, int], views: int = predictor.n_views) -> int:
        return len(plan_tiles(shape, *_tiling(shape, user_tile, settings), predictor.multiple)) * views

    total = [len(frames) * (passes_at(working) + (passes_at(working, 1) if fill else 0))]
    if progress is not None:
        predictor.on_view = lambda done: progress(done, total[0])

    def at_shape(frame: np.ndarray, shape: tuple[int, int]) -> Instances:
        """The frame's instances found at `shape`, in `shape`'s coordinates."""
        scaled = frame if shape == frame.shape else resize(frame, shape, order=1, anti_aliasing=shape[0] < frame.shape[0]).astype(np.float32)
        size, overlap = _tiling(shape, user_tile, settings)
        return segment_tiled(scaled, predictor.segment_tile, size, overlap, multiple=predictor.multiple)

    def rescaled(frame: np.ndarray, working: tuple[int, int], found: Instances | None = None) -> Instances:
        """The frame's instances at `working` (`found` there already, if given), shrunk
        further while auto_scale finds them too large."""
        found = at_shape(frame, working) if found is None else found
        shape, scale = working, 1.0
        for _ in range(object_size.MAX_PASSES if auto_scale else 0):
            # Never below the smallest frame a tile plan accepts, and the same factor on both axes.
            cells = found.of_class(CELL)
            smaller = max(object_size.target_scale(cells, settings.object_diameters, scale), MIN_SIDE / min(working))
            if smaller > scale * 0.99:
                break
            new_shape = (round(working[0] * smaller), round(working[1] * smaller))
            total[0] += passes_at(new_shape)
            candidate = at_shape(frame, new_shape)
            if len(candidate.of_class(CELL)) < object_size.MIN_OBJECTS:  # shrinking lost the objects: keep what was found
                break
            found, shape, scale = candidate, new_shape, smaller
        return found if shape == frame.shape else to_frame_size(found, frame.shape)

    def framed(frame: np.ndarray) -> Instances:
        """A quick pass (no TTA) finds the objects; the window around them is segmented."""
        predictor.tta, with_tta = False, predictor.tta
        try:
            first = at_shape(frame, working)
        finally:
            predictor.tta = with_tta
        box = framing.objects_box(first, frame.shape)
        found = None if box is None else windowed(frame, box)
        if found is None:  # the objects fill the frame already; without TTA the quick pass was the pass
            if not tta:
                total[0] -= passes_at(working)
                if progress is not None:
                    progress(predictor.views_done, total[0])
            return rescaled(frame, working, None if tta else first)
        return found

    def windowed(frame: np.ndarray, box: tuple[int, int, int, int]) -> Instances | None:
        """The frame's instances found in the window in which `box` spans `frame_fill` of
        the side; None when that window would be nearly the whole frame."""
        win = framing.window(box, frame.shape, float(fill))
        if win is None:
            return None
        y0, x0, y1, x1 = win
        inner = working_shape((y1 - y0, x1 - x0), settings.working_size)
        total[0] += passes_at(inner) - passes_at(working)
        return rescaled(frame[y0:y1, x0:x1], inner).shifted(y0, x0, frame.shape)

    def localised(frame: np.ndarray) -> FrameResult:
        """Cells in the window around the embryo, kept if they can be cells. The zona says
        where the embryo is and how far its cells reach; without a zona, what a quick pass
        finds says it."""
        embryo = find_embryo(frame, settings.localiser)
        inside = None if embryo is None else embryo.inside_mask(frame.shape)
        if not fill:
            return result(rescaled(frame, working), embryo, inside)
        if embryo is not None and CELLS_SHARE and settings.localiser == "learned":
            # The cells lie inside the zona, so its inner disc frames them and no quick pass
            # is needed. The classical fit may take the well's disc for the zona, and what
            # the quick pass finds inside it keeps the window on the cells.
            total[0] -= passes_at(working, 1)
            found = windowed(frame, embryo.cells_box(frame.shape, CELLS_SHARE))
            return result(rescaled(frame, working) if found is None else found, embryo, inside)
        predictor.tta, with_tta = False, predictor.tta
        try:
            first = plausible_cells(at_shape(frame, working).resized(frame.shape).of_class(CELL), inside)
        finally:
            predictor.tta = with_tta
        box = framing.objects_box(first, frame.shape)
        found = None if box is None else windowed(frame, box)
        return result(rescaled(frame, working) if found is None else found, embryo, inside)

    def result(found: Instances, embryo: Embryo | None, inside: np.ndarray | None) -> FrameResult:
        """Cells and fragments apart; where the embryo was looked for, only those that can be."""
        cells = found.of_class(CELL)
        if settings.localise_embryo:
            cells = plausible_cells(cells, inside)
        fragments = None
        if model.method.finds_fragments(model.config):
            fragments = plausible_fragments(found.of_class(FRAGMENT), inside, cells)
        return FrameResult(cells, embryo, fragments)

    results = []
    for frame in frames:
        frame = model_input(frame, settings)
        if settings.localise_embryo:
            results.append(localised(frame))
        else:
            results.append(result(framed(frame) if fill else rescaled(frame, working), None, None))
    return results


def segment_frames(
    image: np.ndarray,
    model: Model | str | os.PathLike | None = None,
    tta: bool = True,
    tile: int | None = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    bf16: bool = False,
    auto_scale: bool = True,
) -> list[Instances]:
    """The cells of each frame of `analyse_frames`: one Instances per frame."""
    return [r.cells for r in analyse_frames(image, model, tta, tile, device, progress, bf16, auto_scale)]


def segment(
    image: np.ndarray,
    model: Model | str | os.PathLike | None = None,
    tta: bool = True,
    tile: int | None = None,
    device: str | torch.device = "auto",
    progress: Progress | None = None,
    bf16: bool = False,
    auto_scale: bool = True,
) -> Instances:
    """Segment one 2D frame (H, W); see `segment_frames` for stacks and `auto_scale`."""
    image = as_array(image)
    if image.ndim == 3 and image.shape[-1] not in (3, 4):
        raise ValueError(f"segment() takes one 2D frame; got shape {image.shape}. Use segment_frames() for stacks")
    return segment_frames(image, model, tta=tta, tile=tile, device=device, progress=progress, bf16=bf16, auto_scale=auto_scale)[0]
