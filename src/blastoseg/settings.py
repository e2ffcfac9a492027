"""Pipeline settings: how frames are prepared for a model and its views merged, whatever the method.

A checkpoint stores them beside the method's own config (network, losses,
post-processing), because code outside `methods/` reads them: preprocessing, framing,
object-size rescaling, tiling and the TTA consensus. Older checkpoints kept them in the
method config; `split_config` takes them out, so those files load unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PipelineSettings:
    # Embryo models see whole frames at the scale they were trained at (longer side, px);
    # None: the image's own resolution (nuclei).
    working_size: int | None = None
    tile_overlap: int = 128  # px between tiles; must exceed the largest object
    # The fraction of the window's side the objects' box spans (`inference.framing`); None: no framing.
    frame_fill: float | None = None
    # Find the embryo by its zona pellucida first (`inference.localise`), segment the window
    # around it and keep only the cells inside it (`inference.plausible`).
    localise_embryo: bool = False
    localiser: str = "learned"  # how (`inference.localise.LOCALISERS`): the zona network or the classical fit
    # {"median": d, "range": [low, high]}: object diameters seen in training (`inference.object_size`).
    object_diameters: dict[str, Any] | None = None
    invert_bright_background: bool = False  # dark objects on a bright field are inverted first
    normalize_percentiles: tuple[float, float] = (1.0, 99.8)
    tta_min_votes: int = 4  # views that must agree on an instance in the TTA consensus
    # Settings (method config or the fields above) that replace the usual ones when TTA
    # views are merged: a consensus can take a laxer threshold than a single view.
    tta_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.working_size is not None and int(self.working_size) < 16:
            raise ValueError(f"working_size must be at least 16 pixels or None; got {self.working_size}")
        if self.frame_fill is not None and not 0 < float(self.frame_fill) <= 1:
            raise ValueError(f"frame_fill must be in (0, 1] or None; got {self.frame_fill}")
        from blastoseg.inference.localise import LOCALISERS

        if self.localiser not in LOCALISERS:
            raise ValueError(f"localiser must be one of {', '.join(LOCALISERS)}; got {self.localiser!r}")
        if int(self.tile_overlap) < 0:
            raise ValueError(f"tile_overlap must be >= 0; got {self.tile_overlap}")
        object.__setattr__(self, "normalize_percentiles", tuple(float(p) for p in self.normalize_percentiles))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PipelineSettings:
        unknown = set(values) - FIELDS
        if unknown:
            raise ValueError(f"unknown pipeline settings {sorted(unknown)}; known: {sorted(FIELDS)}")
        # A working size of 0 was the old way of saying "none".
        return cls(**{k: (None if k == "working_size" and not v else v) for k, v in values.items()})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the checkpoint."""
        values = dataclasses.asdict(self)
        values["normalize_percentiles"] = list(self.normalize_percentiles)
        return values

    def replaced(self, **changes: Any) -> PipelineSettings:
        return dataclasses.replace(self, **changes)

    def with_tta(self) -> PipelineSettings:
        """These settings as they stand when TTA views are merged (`tta_settings` applied)."""
        own = {k: v for k, v in self.tta_settings.items() if k in FIELDS}
        return dataclasses.replace(self, **own) if own else self


FIELDS = frozenset(f.name for f in dataclasses.fields(PipelineSettings))


def split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method config, pipeline settings) of a flat config that mixes them (older checkpoints,
    `--config` overrides)."""
    method = {k: v for k, v in config.items() if k not in FIELDS}
    pipeline = {k: v for k, v in config.items() if k in FIELDS}
    return method, pipeline


def method_tta_settings(settings: PipelineSettings) -> dict[str, Any]:
    """The part of `tta_settings` that replaces method config entries."""
    return {k: v for k, v in settings.tta_settings.items() if k not in FIELDS}
