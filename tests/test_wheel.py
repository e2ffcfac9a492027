"""A built wheel, installed into a fresh environment, lists the shipped models and runs the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout to know the source files")
    return [name for name in out.decode().split("\0") if name]


def test_a_built_wheel_ships_the_models_and_runs_the_demo(tmp_path: Path) -> None:
    source = tmp_path / "source"  # built from a copy, so the checkout gains no build/ folder
    for name in _tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("blastoseg-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies (torch, napari, ...) come from this environment, blastoseg from the wheel only.
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    info = subprocess.run([str(venv / "bin" / "blastoseg"), "info"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    installed = Path(site) / "blastoseg" / "models"
    for name in ("vqshape", "layered", "embedseg", "fcrnet", "embedseg-nuclei", "fcrnet-nuclei"):
        assert f"{installed / name}.safetensors" in info.stdout, info.stdout
    demo = subprocess.run([str(venv / "bin" / "blastoseg"), "demo", "-o", str(tmp_path / "demo"), "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "demo" / "sample_embryo_amodal.tif").is_file() and (tmp_path / "demo" / "sample_embryo_cells.csv").is_file()
