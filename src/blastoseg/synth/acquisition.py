"""The acquisition around a synthetic embryo: how the instrument frames and sees it.

A clinic's frame is more than the embryo. EmbryoScope-style well views show the culture
well's bright rim crescent and black beyond it; embryos sit off-centre or are cut by the
frame and fill 20-95 % of it; cumulus clumps, debris and sperm lie on the dish; the
instrument burns in the well number and the time; files are JPEG at any quality, focus
drifts and contrast runs from flat to harsh. `Acquisition` samples all of that;
`render` draws the dish objects into the optical path, lights the frame through the
well, and `finish` applies what happens after the sensor.
"""

from __future__ import annotations

import io as _bytes
from dataclasses import dataclass, replace

import numpy as np

from blastoseg.synth.bodies import add_sphere

MODALITIES = ("hoffman", "strong_hoffman", "dic", "brightfield")
_MODALITY_P = (0.45, 0.2, 0.15, 0.2)
# How the embryo is framed: (name, weight, zona-diameter / frame-side range).
_VIEWS = (("crop", 0.3, (0.6, 0.95)), ("well", 0.35, (0.35, 0.75)), ("wide", 0.15, (0.2, 0.4)), ("cut", 0.2, (0.45, 0.95)))


@dataclass(frozen=True)
class Well:
    """The round culture well the embryo lies in (pixels of the frame)."""

    cy: float
    cx: float
    radius: float
    rim_dir: float  # direction of the bright crescent, radians
    rim_width: float  # its widest extent, px
    rim_gain: float  # crescent brightness relative to the well floor
    outside: float  # light beyond the rim on the crescent's side (0 = black everywhere)
    falloff: float  # darkening of the floor toward the far side, 0..1

    def light(self, shape: tuple[int, int]) -> np.ndarray:
        """Multiplier of the illumination over the frame."""
        yy = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(self.cy)
        xx = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(self.cx)
        d = np.hypot(yy, xx) - np.float32(self.radius)  # < 0 inside the well
        facing = np.cos(np.arctan2(yy, xx) - np.float32(self.rim_dir))  # 1 on the crescent's side
        soft = max(self.radius * 0.01, 1.0)
        inside = _sigmoid(-d / soft)
        width = self.rim_width * np.clip(facing, 0, None) ** 1.5
        # The crescent's outer edge is the well wall (sharp); inward it fades.
        crescent = _sigmoid((d + width) / (soft + 0.3 * width)) * (width > 0.5)
        far = np.clip(-facing, 0, None) * np.exp(np.minimum(d, 0) / (0.25 * self.radius))
        floor = 1 + (self.rim_gain - 1) * crescent - self.falloff * far
        beyond = self.outside * np.clip(facing, 0, None) * np.exp(-np.maximum(d, 0) / (0.3 * self.radius))
        return (inside * floor + (1 - inside) * beyond).astype(np.float32)


@dataclass(frozen=True)
class Label:
    """Text burned in by the instrument: a corner and a string, boxed or not."""

    corner: str  # "tl", "tr", "bl", "br"
    text: str
    height: float  # px
    boxed: bool
    dark_text: bool


@dataclass(frozen=True)
class Acquisition:
    """One instrument's view of one embryo (shared by all frames of a time-lapse)."""

    modality: str
    fill: float  # zona outer diameter / shorter frame side
    centre: tuple[float, float]  # embryo centre, px
    well: Well | None
    labels: tuple[Label, ...]
    clumps: np.ndarray  # (k, 3) cumulus or debris clumps beside the zona: angle, gap / r, size / r
    sperm: np.ndarray  # (k, 4) sperm: y, x (fractions of the frame), heading, length / r
    blur: float  # focus blur, px
    contrast: float  # after the sensor: < 1 flat, > 1 harsh
    jpeg: int | None  # JPEG quality, None for a lossless file
    hours: float  # time stamp of the first frame
    interval: float  # hours between frames

    @classmethod
    def sample(cls, rng: np.random.Generator, shape: tuple[int, int]) -> Acquisition:
        u = rng.uniform
        side = min(shape)
        view = rng.choice(len(_VIEWS), p=[v[1] for v in _VIEWS])
        name, _, (lo, hi) = _VIEWS[view]
        fill = u(lo, hi)
        r = fill * side / 2
        h, w = shape
        if name == "crop":
            centre = (h / 2 + u(-0.1, 0.1) * r, w / 2 + u(-0.1, 0.1) * r)
        elif name == "cut":  # the frame edge cuts up to half the embryo's diameter away
            edge = rng.integers(4)
            depth = u(0.15, 1.0) * r
            along = u(0.5 * r, max(0.5 * r, [w, h][edge % 2] - 0.5 * r))
            centre = [(depth, along), (along, w - depth), (h - depth, along), (along, depth)][edge]
            centre = (float(centre[0]), float(centre[1]))
        elif name == "well":  # EmbryoScope-like: the well fills the frame, the embryo lies on its floor
            well = _sample_well(rng, shape, (h / 2 + u(-0.1, 0.1) * side, w / 2 + u(-0.1, 0.1) * side), 0.0)
            a, rho = u(0, 2 * np.pi), max(well.radius - r - 0.02 * side, 0) * np.sqrt(u(0, 1))
            centre = (well.cy + rho * np.sin(a), well.cx + rho * np.cos(a))
        else:  # anywhere the embryo stays whole
            centre = (u(r, max(r, h - r)), u(r, max(r, w - r)))
        if name != "well":
            well = _sample_well(rng, shape, centre, r) if name != "crop" and rng.random() < 0.4 else None
        labels = _sample_labels(rng, side) if rng.random() < 0.6 else ()
        k = int(rng.poisson(2.0)) if rng.random() < 0.7 else 0
        clumps = np.column_stack([u(0, 2 * np.pi, k), u(-0.1, 0.6, k), u(0.1, 0.3, k)])
        k = int(rng.poisson(1.5)) if rng.random() < 0.3 else 0
        sperm = np.column_stack([rng.random((k, 2)), u(0, 2 * np.pi, k), u(0.3, 0.5, k)])
        return cls(
            modality=str(rng.choice(MODALITIES, p=_MODALITY_P)),
            fill=float(fill),
            centre=centre,
            well=well,
            labels=labels,
            clumps=clumps,
            sperm=sperm,
            blur=float(u(0.5, 2.5)) if rng.random() < 0.3 else 0.0,
            contrast=float(np.exp(u(np.log(0.45), np.log(1.8)))),
            jpeg=int(rng.integers(25, 96)) if rng.random() < 0.6 else None,
            hours=float(u(0, 120)),
            interval=float(u(0.1, 0.5)),
        )

    def at_frame(self, index: int) -> Acquisition:
        """The same view `index` frames later (its time stamp moves on)."""
        return replace(self, hours=self.hours + index * self.interval)

    def draw_dish(self, path: np.ndarray, absorb: np.ndarray, centre: tuple[float, float], r_out: float, rng: np.random.Generator) -> None:
        """Cumulus clumps, debris and sperm on the dish, outside the zona (never cells)."""
        cy, cx = centre
        for angle, gap, size in self.clumps:
            dist = r_out * (1 + gap + size)
            ky, kx = cy + dist * np.sin(angle), cx + dist * np.cos(angle)
            for _ in range(int(rng.integers(10, 60))):  # a clump is many small granular cells
                off = rng.normal(0, 0.4 * size * r_out, 2)
                rad = max(size * r_out * rng.uniform(0.06, 0.2), 1.0)
                gy, gx = ky + off[0], kx + off[1]
                if np.hypot(gy - cy, gx - cx) > r_out + rad + 2:
                    add_sphere(path, gy, gx, rad, rng.uniform(0.4, 1.2))
                    add_sphere(absorb, gy, gx, rad, rng.uniform(0.0, 0.3) / rad)
        h, w = path.shape
        for fy, fx, heading, length in self.sperm:
            y, x = fy * h, fx * w
            if np.hypot(y - cy, x - cx) < r_out + 3:
                continue
            head = max(0.03 * r_out, 1.0)
            add_sphere(path, y, x, head, 1.0)
            steps = np.linspace(head, length * r_out, 40)
            wiggle = 0.05 * r_out * np.sin(steps / (0.08 * r_out))
            ty = y - steps * np.sin(heading) + wiggle * np.cos(heading)
            tx = x - steps * np.cos(heading) - wiggle * np.sin(heading)
            ok = (ty >= 0) & (ty < h - 1) & (tx >= 0) & (tx < w - 1)
            path[ty[ok].astype(int), tx[ok].astype(int)] += 0.8

    def finish(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What the instrument does after the sensor: contrast, burned-in text, JPEG."""
        mid = float(np.median(image))
        img = np.clip((image - mid) * self.contrast + mid, 0, 1)
        if self.labels:
            img = _burn_labels(img, self.labels, self.hours)
        if self.jpeg is not None:
            img = _jpeg(img, self.jpeg)
        return img.astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -30, 30)))


def _sample_well(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float], r: float) -> Well:
    """A well round an embryo of radius r at `centre` (r = 0: a well centred there)."""
    u = rng.uniform
    side = min(shape)
    rim_dir = u(0, 2 * np.pi)
    if r:  # the embryo lies on the well floor, often near the wall where it settled
        radius = max(u(0.42, 0.65) * side, 1.15 * r)
        a, rho = u(0, 2 * np.pi), max(radius - 1.1 * r, 0) * np.sqrt(u(0, 1))
    else:  # a frame-filling well, moved off centre away from its crescent so that it shows
        radius = u(0.4, 0.56) * side
        a, rho = rim_dir, u(0.0, 0.15) * side
    return Well(
        cy=centre[0] - rho * np.sin(a), cx=centre[1] - rho * np.cos(a), radius=float(radius),
        rim_dir=float(rim_dir), rim_width=float(u(0.04, 0.14) * side), rim_gain=float(u(1.4, 2.6)),
        outside=float(u(0, 0.8)), falloff=float(u(0.2, 0.9)),
    )


def _sample_labels(rng: np.random.Generator, side: int) -> tuple[Label, ...]:
    height = float(rng.uniform(0.02, 0.045) * side)
    boxed, dark = bool(rng.random() < 0.6), bool(rng.random() < 0.5)
    well_text = str(rng.choice([f"Well {rng.integers(1, 17)}", f"WELL{rng.integers(1, 17):02d}", f"#{rng.integers(1, 99)}"]))
    corners = list(rng.permutation(["tl", "tr", "bl", "br"]))
    labels = [Label(corners[0], well_text, height, boxed, dark), Label(corners[1], "{hours}", height, boxed, dark)]
    if rng.random() < 0.3:
        labels.append(Label(corners[2], str(rng.choice(["20x", "HMC", "D2024.10.20", "50 um"])), height, boxed, dark))
    return tuple(labels)


def _burn_labels(img: np.ndarray, labels: tuple[Label, ...], hours: float) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    h, w = img.shape
    canvas = Image.fromarray((img * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for label in labels:
        text = label.text.replace("{hours}", f"{hours:.1f} h")
        font = ImageFont.load_default(size=max(int(label.height), 6))
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        pad = max(int(label.height * 0.2), 1)
        tw, th = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
        x = pad if label.corner[1] == "l" else w - tw - pad
        y = pad if label.corner[0] == "t" else h - th - pad
        ink, paper = (0, 255) if label.dark_text else (255, 0)
        if label.boxed:
            draw.rectangle((x, y, x + tw, y + th), fill=paper)
        draw.text((x + pad - x0, y + pad - y0), text, fill=ink, font=font)
    return np.asarray(canvas, np.float32) / 255


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = _bytes.BytesIO()
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf), np.float32) / 255
