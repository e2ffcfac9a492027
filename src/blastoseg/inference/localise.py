"""Where the embryo is: the zona pellucida, by one of two localisers.

`learned` (the default, `inference.zona_net`): a small network trained on synthetic
acquisitions maps the frame to the zona and the space inside it, and circles are fitted to
their outlines. `classical` (`inference.zona_fit`): a circular Hough search scored by the
zona's radial signature, no model. Their measured figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import os

import numpy as np

from blastoseg.inference.embryo import Embryo

LOCALISERS = ("learned", "classical")
DEFAULT_LOCALISER = "learned"


def find_embryo(frame: np.ndarray, localiser: str = DEFAULT_LOCALISER,
                weights: str | os.PathLike | None = None) -> Embryo | None:
    """The zona pellucida in a 2D frame (any dtype, any size; RGB is averaged), or None when
    nothing in it looks like one. `weights`: another zona network than the shipped one."""
    if localiser == "classical":
        from blastoseg.inference.zona_fit import fit_zona

        return fit_zona(frame)
    if localiser == "learned":
        from blastoseg.inference.zona_net import load_net, predict_zona

        # On the CPU whatever the segmentation device: one 128 px pass takes milliseconds,
        # and the zona comes out the same on every machine.
        return predict_zona(frame, load_net(weights))
    raise ValueError(f"unknown localiser {localiser!r}; choose one of {', '.join(LOCALISERS)}")
