"""`blastoseg demo`: the bundled sample embryo segmented with the default model."""

from __future__ import annotations

import argparse
from pathlib import Path

from blastoseg.cli.common import pass_progress

DEMO_SEED = 0
DEMO_SIZE = 256

def run(args: argparse.Namespace) -> int:
    """Segment the bundled sample embryo with the default model; write layers, CSV and scores."""
    import numpy as np

    from blastoseg import io, metrics, synth
    from blastoseg.catalogue import default_model_name
    from blastoseg.checkpoint import load
    from blastoseg.files import measure_files, segment_file
    from blastoseg.measure import write_csv

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    sample = synth.synth_embryo((DEMO_SIZE, DEMO_SIZE), seed=np.random.default_rng(DEMO_SEED))
    image = io.write_image(out / "sample_embryo.tif", sample.image.astype(np.float32))
    truth = {"method": "ground truth (synthetic)", "seed": str(DEMO_SEED)}
    io.write_amodal(out / "sample_embryo_gt_amodal.tif", sample.instances, truth)
    io.write_labels(out / "sample_embryo_gt_visible.tif", sample.instances.visible_labels())
    model = load(args.model or default_model_name(), device=args.device)
    with pass_progress(image.name) as progress:
        amodal, visible, count = segment_file(image, model, out, tta=True, device=args.device, progress=progress)
    cells_csv, frames_csv = write_csv(measure_files([amodal], 1.0, None), out / "sample_embryo.csv", on_exists="overwrite")
    found = io.read_amodal(amodal)[0][0]
    reference = sample.instances if model.method.amodal else sample.instances.visible()
    scores = metrics.evaluate([found], [reference])
    print(f"sample embryo: {len(sample.instances)} blastomeres in the ground truth, {count} found by {model.name}")
    print(f"  mAP {scores['mAP']:.3f}, AP_dsb@0.5 {scores['AP_dsb@0.50']:.3f} against the "
          f"{'amodal' if model.method.amodal else 'visible'} ground truth")
    for what, path in [("image", image), ("amodal layers", amodal), ("visible labels", visible),
                       ("per-cell CSV", cells_csv), ("per-frame CSV", frames_csv),
                       ("ground truth", out / "sample_embryo_gt_amodal.tif")]:
        print(f"  {what:<15} {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="segment the bundled sample embryo; write its layers, CSV and scores")
    p.add_argument("-o", "--output", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("-m", "--model", default=None, help="model name or path (default: the best shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.set_defaults(func=run)
