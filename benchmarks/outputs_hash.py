"""Hashes of every shipped model's output on two fixed frames, with and without TTA.

A refactor that must not change results is checked by running this before and after it
and comparing the JSON (24 cases: 6 models x 2 frames x TTA off/on):

    python -m benchmarks.outputs_hash > before.json    # at the old commit
    python -m benchmarks.outputs_hash > after.json     # at the new one
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

MODELS = ("embedseg", "embedseg-nuclei", "fcrnet", "fcrnet-nuclei", "layered", "vqshape")


def frames() -> dict[str, np.ndarray]:
    """A clean synthetic embryo, and one under noise on a non-square frame."""
    from blastoseg.synth import synth_embryo

    noise = np.random.default_rng(5).random((200, 240))
    return {"embryo": synth_embryo((256, 256), seed=11).image.astype(np.float32),
            "mixed": (noise * 0.2 + synth_embryo((200, 240), seed=12, n_cells=6).image * 0.8).astype(np.float32)}


def main() -> None:
    from blastoseg.inference.predict import segment

    cases = {}
    for name in MODELS:
        for key, image in frames().items():
            for tta in (False, True):
                found = segment(image, name, tta=tta, device="cpu")
                digest = hashlib.sha256()
                for array in (found.boxes, found.scores, found.depth, *found.masks):
                    digest.update(np.ascontiguousarray(array).tobytes())
                cases[f"{name}/{key}/tta={tta}"] = [len(found), digest.hexdigest()[:16]]
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
