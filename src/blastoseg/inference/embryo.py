"""The embryo as localisation finds it: its zona pellucida as two concentric circles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Embryo:
    """A zona pellucida as two concentric circles, in the coordinates of the frame it was found in."""

    centre: tuple[float, float]  # (y, x) px; may lie outside the frame when the embryo is cut
    outer_radius: float  # zona outer boundary, px
    inner_radius: float  # boundary of the space inside the zona (perivitelline space and cells), px
    score: float  # 0..1, how zona-like the fit is: edge coverage x texture contrast x inner edge

    @classmethod
    def from_dict(cls, values: dict) -> Embryo:
        """The embryo `as_dict` stored (e.g. in an amodal TIFF's metadata)."""
        return cls(
            (float(values["centre"][0]), float(values["centre"][1])),
            float(values["outer_radius"]),
            float(values["inner_radius"]),
            float(values["score"]),
        )

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {
            "centre": [round(float(c), 2) for c in self.centre],
            "outer_radius": round(float(self.outer_radius), 2),
            "inner_radius": round(float(self.inner_radius), 2),
            "score": round(float(self.score), 4),
        }

    @property
    def zona_thickness(self) -> float:
        """Outer minus inner radius, px: a clinical measure of its own (zona thinning)."""
        return self.outer_radius - self.inner_radius

    def _distance(self, shape: tuple[int, ...]) -> np.ndarray:
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        return np.hypot(yy - self.centre[0], xx - self.centre[1])

    def inside_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Bool (H, W): the space inside the zona, where every cell and fragment should lie."""
        return self._distance(shape) <= self.inner_radius

    def zona_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Bool (H, W): the ring between inner and outer radius."""
        d = self._distance(shape)
        return (d > self.inner_radius) & (d <= self.outer_radius)

    def box(self, shape: tuple[int, ...], margin: float = 0.1) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), ends exclusive: the square around the zona widened by `margin` of
        its diameter on each side, clipped to the frame (so not square when the embryo is cut)."""
        return self._square(self.outer_radius * (1.0 + 2.0 * margin), shape)

    def cells_box(self, shape: tuple[int, ...], share: float = 1.0) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), ends exclusive: the square of half-side `share` x the inner
        radius around the centre, where the cells lie, clipped to the frame."""
        return self._square(share * self.inner_radius, shape)

    def _square(self, half: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        cy, cx = self.centre
        y0, x0 = max(0, int(np.floor(cy - half))), max(0, int(np.floor(cx - half)))
        y1, x1 = min(shape[0], int(np.ceil(cy + half)) + 1), min(shape[1], int(np.ceil(cx + half)) + 1)
        return y0, x0, max(y0, y1), max(x0, x1)

    def is_cut(self, shape: tuple[int, ...]) -> bool:
        """Whether the zona's outer circle crosses the frame edge: measurements of a cut embryo
        rest on the visible arc only, and cells beyond the edge cannot be seen."""
        cy, cx = self.centre
        r = self.outer_radius
        return cy - r < 0 or cx - r < 0 or cy + r > shape[0] - 1 or cx + r > shape[1] - 1

    def measurements(self, pixel_size_um: float | None = None) -> dict[str, float]:
        """Zona outer and inner diameter and thickness, in px and, given the pixel size, in µm."""
        px = {
            "zona_outer_diameter_px": 2.0 * self.outer_radius,
            "zona_inner_diameter_px": 2.0 * self.inner_radius,
            "zona_thickness_px": self.zona_thickness,
        }
        if pixel_size_um is None:
            return px
        um = {k[:-3] + "_um": v * pixel_size_um for k, v in px.items()}
        return {**px, **um}


def zona_labels(embryo: Embryo, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 (H, W) for a labels layer or a TIFF: 1 on the zona ring, 2 inside it, 0 elsewhere."""
    labels = np.zeros(shape[:2], np.uint8)
    labels[embryo.zona_mask(shape)] = 1
    labels[embryo.inside_mask(shape)] = 2
    return labels
