"""A model on the fixed synthetic embryo test set (200 images of 256 x 256, seed 2026).

    python -m benchmarks.embryo -m embedseg            # prints JSON
    python -m benchmarks.embryo --reference            # perfect visible masks vs amodal truth
    python -m benchmarks.embryo -m models/embedseg.safetensors --tune   # thresholds on 50 validation embryos (seed 777)

Scores against the amodal ground truth (what blastoseg promises) and against the visible
ground truth (what a modal method can reach), with and without 8-fold TTA. The test set
is `blastoseg synth OUT --kind embryo --n 200 --seed 2026` (`datasets.synthetic_embryos`),
generated here in memory.
"""

from __future__ import annotations

import argparse

from benchmarks import datasets, runner
from benchmarks.scoring import print_report, scores, segment_timed

N_TUNE = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default="embedseg")
    parser.add_argument("--n", type=int, default=datasets.EMBRYO_TEST_N)
    parser.add_argument("--reference", action="store_true", help="score the perfect visible masks instead of a model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tune", action="store_true", help="choose the thresholds on 50 validation embryos, save them in the model")
    args = parser.parse_args()
    if args.tune:
        samples = datasets.synthetic_embryos(N_TUNE, datasets.EMBRYO_TUNE_SEED)
        runner.tune_and_save(args.model, [(s.image, s.instances) for s in samples], True, args.device,
                             f"{N_TUNE} synthetic embryos, seed {datasets.EMBRYO_TUNE_SEED}")
        return
    samples = datasets.synthetic_embryos(args.n)
    amodal = [s.instances for s in samples]
    visible = [s.instances.visible() for s in samples]
    if args.reference:
        print_report({"reference": "perfect visible masks", "n_images": len(samples), "vs_amodal": scores(visible, amodal)})
        return
    from blastoseg.checkpoint import load

    model = load(args.model, device=args.device)
    report = {"model": args.model, "method": model.method.name, "n_images": len(samples)}
    for tta in (False, True):
        found, seconds = segment_timed(model, [s.image for s in samples], tta, args.device)
        report["tta" if tta else "no_tta"] = {
            "seconds_per_image": seconds, "vs_amodal": scores(found, amodal), "vs_visible": scores(found, visible),
        }
    print_report(report)


if __name__ == "__main__":
    main()
