"""Draw docs/figures/synthetic_embryos.png: 8 synthetic embryos with every amodal outline.

Run: .venv/bin/python docs/make_synth_figure.py [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage import measure  # noqa: E402

from blastoseg.synth import synth_embryo  # noqa: E402

CELLS = (1, 2, 3, 4, 6, 8, 12, 16)


def main(seed: int = 0, out: Path | None = None, outlines: bool = True) -> Path:
    out = out or Path(__file__).parent / "figures" / "synthetic_embryos.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    for i, (ax, n) in enumerate(zip(axes.ravel(), CELLS)):
        sample = synth_embryo((256, 256), n_cells=n, seed=seed + i)
        ax.imshow(sample.image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        inst = sample.instances
        if outlines:
            for k in range(len(inst)):
                mask = np.pad(inst.mask(k), 1)
                for contour in measure.find_contours(mask.astype(float), 0.5):
                    ax.plot(contour[:, 1] - 1, contour[:, 0] - 1, color=colours[k % 20], lw=1.1)
            if sample.fragments.any():
                ax.contour(sample.fragments, levels=[0.5], colors="w", linewidths=0.8)
        rates = inst.occlusion_rates()
        cells = f"{len(inst)} cell" + ("s" if len(inst) > 1 else "")
        ax.set_title(f"{cells}, most occluded {rates.max():.0%}", fontsize=10)
        ax.set_axis_off()
    fig.suptitle("blastoseg synthetic embryos: amodal blastomere outlines (colour), fragments (white)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-outlines", action="store_true", help="show the raw images only")
    args = parser.parse_args()
    print(main(args.seed, args.out, not args.no_outlines))
