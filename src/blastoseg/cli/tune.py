"""`blastoseg tune`: choose a model's post-processing settings on held-out annotated images."""

from __future__ import annotations

import argparse
from pathlib import Path

TUNE_SEED = 777  # the benchmarks' validation embryos, disjoint from their test embryos


def held_out_items(dataset: str, n: int, seed: int) -> tuple[list, str]:
    """(image, truth) pairs and a description, from a dataset folder or `synthetic:embryo`."""
    import numpy as np

    if dataset == "synthetic:embryo":
        from blastoseg.synth import synth_embryo

        rng = np.random.default_rng(seed)
        samples = [synth_embryo((256, 256), seed=rng) for _ in range(n)]
        return [(s.image, s.instances) for s in samples], f"{n} synthetic embryos, seed {seed}"
    from blastoseg.training.datasets import iter_dataset

    items = [(item.image, item.instances) for item in iter_dataset(dataset)][:n]
    if not items:
        raise ValueError(f"no annotated images in {dataset}; give a dataset folder (images/ + masks/) or synthetic:embryo")
    return items, f"{len(items)} images of {dataset}"


def run(args: argparse.Namespace) -> int:
    from blastoseg.checkpoint import load, save
    from blastoseg.training.tune import tune_thresholds

    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file; got {output.name}")
    if output.is_dir():
        raise IsADirectoryError(f"-o {output} is a folder; give the model file to write, e.g. {output / 'tuned.safetensors'}")
    if args.n < 1:
        raise ValueError(f"--n must be at least 1; got {args.n}")
    if output.exists() and not args.overwrite:
        raise ValueError(f"{output} exists; choose another -o or pass --overwrite")
    model = load(args.model, device=args.device)
    items, source = held_out_items(args.dataset, args.n, args.seed)
    if not model.method.amodal:
        items = [(image, truth.visible()) for image, truth in items]
    tune_thresholds(model, items, not args.no_tta, args.device, source)
    save(model, output)
    print(f"saved {output}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="choose a model's post-processing thresholds on held-out images; write a new model file")
    p.add_argument("model", metavar="MODEL", help="model name (see `blastoseg info`) or .safetensors path")
    p.add_argument("dataset", metavar="DATASET", help="held-out dataset folder (images/ + masks/) or synthetic:embryo")
    p.add_argument("-o", "--output", required=True, help="the tuned model file to write (.safetensors)")
    p.add_argument("--n", type=int, default=50, help="held-out images to use (default 50)")
    p.add_argument("--seed", type=int, default=TUNE_SEED, help=f"seed of the synthetic held-out embryos (default {TUNE_SEED})")
    p.add_argument("--no-tta", action="store_true", help="tune on single views only")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.set_defaults(func=run)
