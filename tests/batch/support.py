"""Inputs the batch tests share: a tiny untrained model and small frames, built in tmp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

EMBRYOSCOPE_NAMES = [f"D2024.10.20_S01055_I4778_P_WELL06_RUN{r}.JPG" for r in (141, 142, 156, 157, 221, 222)]
SRC = Path(__file__).resolve().parents[2] / "src"


def tiny_model(folder: Path) -> Path:
    """An untrained EmbedSeg net of a few hundred weights: loads and runs in milliseconds."""
    from blastoseg import checkpoint
    from blastoseg.model import new_model

    return checkpoint.save(new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}}), folder / "tiny.safetensors")


def frames(folder: Path, names: list[str], side: int = 64, seed: int = 0) -> list[Path]:
    """Random uint8 frames under `names` (any image suffix)."""
    from blastoseg import io

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return [io.write_image(folder / name, (rng.random((side, side)) * 255).astype(np.uint8)) for name in names]


def manifest(out: Path) -> dict[str, dict[str, str]]:
    from blastoseg.batch.manifest import read

    return read(out / "manifest.csv")


def blastoseg(*args: str, **kwargs: object) -> subprocess.Popen:
    """`python -m blastoseg ARGS` in a child process running this checkout's code."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-m", "blastoseg", *args], env=env, **kwargs)  # type: ignore[call-overload]

