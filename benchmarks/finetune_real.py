"""Fine-tuning on a user's corrected frames, as `blastoseg train DIR --init MODEL` does it.

The fixed split of the real EmbryoScope frames: fine-tune on RUN141 and RUN157 (a 2-cell
and a 4-cell frame; `--frames RUN157` for one frame), score parent and fine-tuned model
on the other four. These models are measurements, never shipped: the real frames are
for evaluation only.

    python -m benchmarks.finetune_real                        # default model, 3 CPU minutes
    python -m benchmarks.finetune_real --minutes 1 10         # several budgets
    python -m benchmarks.finetune_real --frames RUN157

Prints one JSON line per budget: amodal mAP, AP50 and exact counts on the 4 test frames
for parent and fine-tune (with TTA), the fine-tune's validation against its parent's, and
both models' mAP on the synthetic test embryos (forgetting).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.datasets import real_embryos, synthetic_embryos
from benchmarks.scoring import scores

TRAIN_FRAMES = ("RUN141", "RUN157")
SYNTHETIC_N = 100


def evaluate(model: object, frames: list, samples: list, device: str) -> dict:
    from blastoseg.inference.predict import analyse_frames, segment

    found = [analyse_frames(f.image, model, tta=True, device=device)[0].cells for f in frames]
    real = scores(found, [f.cells for f in frames], ("mAP", "AP50"))
    exact = sum(len(p) == len(f.cells) for p, f in zip(found, frames))
    synthetic = scores([segment(s.image, model, tta=True, device=device) for s in samples], [s.instances for s in samples], ("mAP",))
    return {**{k: round(v, 4) for k, v in real.items()}, "exact_counts": int(exact), "counts": [len(p) for p in found],
            "synthetic_mAP": round(synthetic["mAP"], 4)}


def main() -> None:
    from blastoseg.catalogue import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL)
    parser.add_argument("--minutes", type=float, nargs="+", default=[3.0], help="CPU-minute budgets (default 3)")
    parser.add_argument("--frames", nargs="+", default=list(TRAIN_FRAMES), help="frames to train on (RUN numbers)")
    parser.add_argument("--synthetic", type=int, default=SYNTHETIC_N, help="synthetic test embryos for forgetting")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from blastoseg import checkpoint
    from blastoseg.cli import main as cli
    from blastoseg.training import datasets

    frames = real_embryos()
    train = [f for f in frames if any(run in f.name for run in args.frames)]
    test = [f for f in frames if f not in train and not any(run in f.name for run in TRAIN_FRAMES)]
    samples = synthetic_embryos(args.synthetic)
    parent = checkpoint.load(args.model, device=args.device)
    before = evaluate(parent, test, samples, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corrected"
        for f in train:
            datasets.write_item(data, f.name, f.image, f.cells)
        for minutes in args.minutes:
            out = Path(tmp) / f"ft-{minutes}.safetensors"
            start = time.perf_counter()
            cli(["train", str(data), "--init", args.model, "--minutes", str(minutes), "--clock", "cpu",
                 "--device", args.device, "-o", str(out)])
            seconds = time.perf_counter() - start
            tuned = checkpoint.load(out, device=args.device)
            record = tuned.metadata.get("training", {})
            print(json.dumps({"model": args.model, "train_frames": [f.name for f in train], "test_frames": [f.name for f in test],
                              "cpu_minutes": minutes, "wall_seconds": round(seconds, 1), "parent": before,
                              "fine_tuned": evaluate(tuned, test, samples, args.device),
                              "validation": record.get("validation_ap50"), "parent_validation": record.get("parent_validation_ap50"),
                              "beats_parent": record.get("beats_parent")}), flush=True)


if __name__ == "__main__":
    main()
