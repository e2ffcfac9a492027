"""Sample data: a synthetic embryo and a synthetic cleaving time-lapse (seeded, so always the same)."""

from __future__ import annotations

import numpy as np

from blastoseg import synth

EMBRYO = {"shape": (256, 256), "n_cells": 4, "seed": 7}
TIMELAPSE = {"n_frames": 12, "shape": (192, 192), "seed": 3, "final_cells": 8}


def embryo_sample() -> synth.Sample:
    """The sample embryo with its exact ground truth (tests and docs use the same one)."""
    return synth.synth_embryo(**EMBRYO)


def timelapse_samples() -> list[synth.Sample]:
    return synth.synth_timelapse(**TIMELAPSE)


def synthetic_embryo() -> list[tuple[np.ndarray, dict, str]]:
    return [(embryo_sample().image, {"name": "synthetic embryo"}, "image")]


def synthetic_timelapse() -> list[tuple[np.ndarray, dict, str]]:
    frames = np.stack([s.image for s in timelapse_samples()])
    return [(frames, {"name": "synthetic time-lapse"}, "image")]
