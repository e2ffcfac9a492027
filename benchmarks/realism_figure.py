"""Draw docs/figures/synthetic_vs_real.png: the 6 real EmbryoScope frames above 12 synthetic acquisitions.

Run from the repository root, with the real frames where `benchmarks.datasets` finds them
($BLASTOSEG_DATA or ../shared/data):
    python -m benchmarks.realism_figure [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.datasets import real_embryos  # noqa: E402
from blastoseg.synth import synth_embryo  # noqa: E402
from blastoseg.synth.acquisition import Acquisition  # noqa: E402

SIDE = 400


def main(seed: int = 0, out: Path | None = None) -> Path:
    out = out or Path(__file__).resolve().parents[1] / "docs" / "figures" / "synthetic_vs_real.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 6, figsize=(18, 9.6))
    for ax, frame in zip(axes[0], real_embryos()):
        ax.imshow(frame.image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"real: {frame.name.split('_')[-1]}, {len(frame.cells)} cells", fontsize=10)
    rng = np.random.default_rng(seed)
    for ax in axes[1:].ravel():
        acq = Acquisition.sample(np.random.default_rng(rng.integers(2**31)), (SIDE, SIDE))
        sample = synth_embryo((SIDE, SIDE), seed=rng, acquisition=acq)
        ax.imshow(sample.image, cmap="gray", vmin=0, vmax=1)
        well = "well view" if acq.well is not None else "no well"
        ax.set_title(f"{acq.modality.replace('_', ' ')}, {well}\nfill {acq.fill:.0%}, {len(sample.instances)} cells", fontsize=9)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle("Top: the 6 real EmbryoScope frames (evaluation only). Below: synthetic acquisitions (blastoseg.synth)")
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(main(args.seed, args.out))
