"""A model on the fixed synthetic embryo test set (200 images of 256 x 256, seed 2026).

    python benchmarks/embryo.py -m embedseg            # prints JSON
    python benchmarks/embryo.py --reference            # perfect visible masks vs amodal truth
    python benchmarks/embryo.py -m models/embedseg.safetensors --tune   # thresholds on 50 validation embryos (seed 777)

Scores against the amodal ground truth (what blastoseg promises) and against the visible
ground truth (what a modal method can reach), with and without 8-fold TTA. The test set
is `blastoseg synth OUT --kind embryo --n 200 --seed 2026`, generated here in memory.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

TEST_SEED = 2026
N_TEST = 200
TUNE_SEED = 777  # validation embryos for threshold tuning, disjoint from the test set


def test_set(n: int = N_TEST, seed: int = TEST_SEED) -> list:
    """The same images as `blastoseg synth OUT --kind embryo --n N --seed 2026`."""
    from blastoseg import synth

    rng = np.random.default_rng(seed)
    return [synth.synth_embryo((256, 256), seed=rng) for _ in range(n)]


def _scores(found: list, truth: list) -> dict:
    from blastoseg.metrics import evaluate

    keys = ("mAP", "AP_dsb@0.50", "AP_dsb@0.75", "AP", "AP50", "AP75", "AR_none", "AR_partial", "AR_heavy", "area_error_median")
    result = evaluate(found, truth)
    return {k: (None if result[k] != result[k] else round(float(result[k]), 4)) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default="embedseg")
    parser.add_argument("--n", type=int, default=N_TEST)
    parser.add_argument("--reference", action="store_true", help="score the perfect visible masks instead of a model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tune", action="store_true", help="choose the thresholds on 50 validation embryos, save them in the model")
    args = parser.parse_args()
    if args.tune:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from tuning import tune_thresholds

        from blastoseg.checkpoint import load

        amodal_method = load(args.model, device="cpu").method.amodal
        items = [(s.image, s.instances if amodal_method else s.instances.visible()) for s in test_set(50, TUNE_SEED)]
        tune_thresholds(args.model, items, True, args.device, f"50 synthetic embryos, seed {TUNE_SEED}")
        return
    samples = test_set(args.n)
    amodal = [s.instances for s in samples]
    visible = [s.instances.visible() for s in samples]
    if args.reference:
        print(json.dumps({"reference": "perfect visible masks", "n_images": len(samples), "vs_amodal": _scores(visible, amodal)}, indent=1))
        return
    from blastoseg.checkpoint import load
    from blastoseg.inference.predict import segment

    model = load(args.model, device=args.device)
    report = {"model": args.model, "method": model.method.name, "n_images": len(samples)}
    for tta in (False, True):
        start = time.perf_counter()
        found = [segment(s.image, model, tta=tta, device=args.device) for s in samples]
        report["tta" if tta else "no_tta"] = {
            "seconds_per_image": round((time.perf_counter() - start) / len(samples), 3),
            "vs_amodal": _scores(found, amodal),
            "vs_visible": _scores(found, visible),
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
