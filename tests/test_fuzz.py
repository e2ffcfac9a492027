"""Bad input, everywhere: every command and the Python API answer with one clear message.

Each command-line case runs `blastoseg.cli.main` in-process and checks the exit code, a
single `error:` line naming the problem (never a traceback), and that every file that
existed before (inputs, earlier outputs, the model) is byte-identical afterwards, with
no temporary file left behind. API cases check the exception and its message.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch

from blastoseg import checkpoint, io
from blastoseg.atomic import is_temporary
from blastoseg.cli import main
from blastoseg.instances import Instances
from blastoseg.model import new_model
from blastoseg.notices import Notice

TINY = {"net_options": {"base": 4, "depth": 2, "full_res": 4}}
CONFIG = json.dumps(TINY, separators=(",", ":"))  # no spaces: argv strings are split on them
TRAIN = f"--steps 1 --batch 1 --crop 32 --device cpu --config {CONFIG}"


def _cells(shape: tuple[int, int] = (48, 48)) -> Instances:
    labels = np.zeros(shape, np.int32)
    labels[5:20, 5:20], labels[25:40, 22:44] = 1, 2
    return Instances.from_label_image(labels)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Read-only inputs shared by the cases: a tiny model, images, a dataset, results."""
    root = tmp_path_factory.mktemp("world")
    model = new_model("embedseg", TINY)
    checkpoint.save(model, root / "tiny.safetensors")
    with torch.no_grad():
        next(model.net.parameters()).fill_(float("nan"))
    # A NaN model as an earlier version could write it: checkpoint.save now refuses to.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(root / "tiny.safetensors"), "pt") as handle:
        meta = handle.metadata()
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(root / "nan.safetensors"), metadata=meta)
    rng = np.random.default_rng(0)
    frame = (rng.random((48, 48)) * 255).astype(np.uint8)
    tifffile.imwrite(root / "frame.tif", frame)
    with_nan = frame.astype(np.float32)
    with_nan[3, 3] = np.nan
    tifffile.imwrite(root / "one_nan.tif", with_nan)
    tifffile.imwrite(root / "all_nan.tif", np.full((48, 48), np.nan, np.float32))
    tifffile.imwrite(root / "five_d.tif", np.zeros((2, 2, 2, 20, 20), np.uint8))
    tifffile.imwrite(root / "tiny.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(root / "huge.tif", shape=(30000, 30000), dtype=np.uint8)  # 900 MB declared, kB on disk
    tifffile.imwrite(root / "floats.tif", rng.random((48, 48)).astype(np.float32))
    (root / "not_a.tif").write_bytes(b"II*\x00 certainly not a TIFF")
    (root / "junk.safetensors").write_bytes(b"\x80\x04 a pickle, perhaps")
    (root / "folder.safetensors").mkdir()
    (root / "folder.tif").mkdir()
    (root / "a_file").write_text("not a folder")
    io.write_amodal(root / "result_amodal.tif", _cells())
    io.write_amodal(root / "movie_amodal.tif", [_cells(), _cells(), _cells()])
    _edit_info(io.write_amodal(root / "no_frames_amodal.tif", _cells()), lambda info: info.pop("frames"))
    _edit_info(io.write_amodal(root / "short_amodal.tif", [_cells(), _cells(), _cells()]), lambda info: info["frames"].pop())
    dataset = root / "ds"
    from blastoseg.training import datasets

    for name in ("a", "b"):
        datasets.write_item(dataset, name, frame.astype(np.float32), _cells())
    (root / "images_only" / "images").mkdir(parents=True)
    poisoned = root / "poisoned"
    datasets.write_item(poisoned, "a", frame.astype(np.float32), _cells())
    io.write_image(poisoned / "images" / "a.tif", np.full((48, 48), np.inf, np.float32))
    (root / "preds").mkdir()
    io.write_amodal(root / "preds" / "other_amodal.tif", _cells())
    (root / "wrong_shape").mkdir()
    io.write_amodal(root / "wrong_shape" / "a_amodal.tif", _cells((40, 40)))
    return root


def _edit_info(path: Path, edit: Callable[[dict], None]) -> None:
    with tifffile.TiffFile(path) as tif:
        data, info = tif.series[0].asarray(), json.loads(tif.imagej_metadata["Info"])
    data = data.reshape(info["shape"])  # ImageJ drops a single plane's axis
    edit(info)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZYX" if data.ndim == 4 else "ZYX", "Info": json.dumps(info)})


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > 1 << 24:  # the sparse 900 MB TIFF: reading it twice a case would take seconds
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(*folders: Path) -> dict[Path, str]:
    return {p: _fingerprint(p) for folder in folders for p in folder.rglob("*") if p.is_file()}


@dataclass(frozen=True)
class Case:
    """argv for `main` ({w}: the shared inputs, {t}: this case's folder); `prepare(t, monkeypatch)`
    sets up what the case needs beyond them."""

    argv: str
    code: int
    message: str
    prepare: Callable[[Path, pytest.MonkeyPatch], None] | None = None


def _existing_output(t: Path, _: pytest.MonkeyPatch) -> None:
    checkpoint.save(new_model("embedseg", TINY), t / "m.safetensors")
    (t / "out_file").write_text("a file the user keeps")


def _users_image(t: Path, _: pytest.MonkeyPatch) -> None:
    (t / "d" / "images").mkdir(parents=True)
    tifffile.imwrite(t / "d" / "images" / "embryo_0000.tif", np.ones((32, 32), np.uint8))


def _full_disk(module: str, name: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def prepare(t: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def full(*args: object, **kwargs: object) -> None:
            target = next((a for a in args if isinstance(a, (str, Path))), None)
            if target is not None:
                Path(target).write_bytes(b"the first half of the fi")  # what a write that runs out of space leaves
            raise OSError(errno.ENOSPC, "No space left on device")

        _existing_output(t, monkeypatch)
        monkeypatch.setattr(f"{module}.{name}", full)

    return prepare


def _env(name: str, value: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    return lambda t, monkeypatch: monkeypatch.setenv(name, value)


SEG = "segment {w}/frame.tif -m {w}/tiny.safetensors --no-tta --device cpu"
CASES = {
    # output paths
    "segment -o a file": Case(SEG + " -o {w}/a_file", 2, "a_file: it exists and is not a folder"),
    "demo -o a file": Case("demo -m {w}/tiny.safetensors --device cpu -o {w}/a_file", 2, "exists and is not a folder"),
    "train -o existing": Case("train synthetic:embryo " + TRAIN + " -o {t}/m.safetensors", 2,
                              "exists; pass --resume to continue training it, --overwrite to replace it", _existing_output),
    "train -o a folder": Case("train synthetic:embryo -o {w}/folder.safetensors", 2, "is a folder; give the model file"),
    "train -o not safetensors": Case("train synthetic:embryo -o {t}/m.pt", 2, "must be a .safetensors file"),
    "train --resume absent": Case("train synthetic:embryo --resume -o {t}/m.safetensors", 2, "--resume needs an existing"),
    "train --resume --init": Case("train synthetic:embryo --resume --init embedseg -o {t}/m.safetensors", 2, "drop --init",
                                  _existing_output),
    "tune -o a folder": Case("tune {w}/tiny.safetensors synthetic:embryo -o {w}/folder.safetensors", 2, "is a folder"),
    # devices
    "train --device gpu": Case("train synthetic:embryo --device gpu -o {t}/m.safetensors", 2, "unknown device 'gpu'"),
    "segment --device gpu": Case("segment {w}/frame.tif -m {w}/tiny.safetensors --device gpu -o {t}/out", 2, "an NVIDIA GPU is 'cuda'"),
    "segment --device cuda": Case("segment {w}/frame.tif -m {w}/tiny.safetensors --device cuda -o {t}/out", 2, "no CUDA GPU"),
    "train --device cuda:0": Case("train synthetic:embryo --device cuda:0 -o {t}/m.safetensors", 2, "no CUDA GPU"),
    # training settings
    "train --crop 0": Case("train synthetic:embryo --crop 0 --steps 1 --device cpu -o {t}/m.safetensors", 2, "crop must be at least 16"),
    "train --crop 50": Case("train synthetic:embryo --crop 50 --steps 1 --device cpu -o {t}/m.safetensors", 2, "multiple of 32"),
    "train --crop huge": Case("train synthetic:embryo --crop 300000 --steps 1 --device cpu -o {t}/m.safetensors", 2, "over the limit"),
    "train --validate-every 0": Case("train synthetic:embryo --validate-every 0 --steps 1 -o {t}/m.safetensors", 2, "validate every 1"),
    "train --config list": Case("train synthetic:embryo --config [1,2] -o {t}/m.safetensors", 2, "--config must be a JSON object"),
    "train --config broken": Case("train synthetic:embryo --config {oops -o {t}/m.safetensors", 2, "--config must be a JSON object"),
    "train --steps 0": Case("train synthetic:embryo --steps 0 -o {t}/m.safetensors", 2, "budget must be positive"),
    "train --minutes nan": Case("train synthetic:embryo --minutes nan -o {t}/m.safetensors", 2, "budget must be positive"),
    "train --epochs 0": Case("train {w}/ds --epochs 0 -o {t}/m.safetensors", 2, "--epochs must be a positive"),
    "train --lr -1": Case("train synthetic:embryo --lr -1 --steps 1 -o {t}/m.safetensors", 2, "learning rate must be a number >= 0"),
    "train --lr nan": Case("train synthetic:embryo --lr nan --steps 1 -o {t}/m.safetensors", 2, "learning rate must be a number >= 0"),
    "train --batch 0": Case("train synthetic:embryo --batch 0 --steps 1 -o {t}/m.safetensors", 2, "batch size"),
    "train --ema 1.5": Case("train synthetic:embryo --ema 1.5 --steps 1 -o {t}/m.safetensors", 2, "between 0 and 1"),
    "train --lr 1e9 diverges": Case("train synthetic:embryo --steps 6 --validate-every 6 --batch 1 --crop 32 --lr 1e9 "
                                    f"--device cpu --config {CONFIG} -o {{t}}/new.safetensors", 2, "training stopped at step"),
    "train on no folder": Case("train {t}/nowhere -o {t}/m.safetensors", 2, "no such dataset folder"),
    "train on images only": Case("train {w}/images_only -o {t}/m.safetensors", 2, "lacks masks/"),
    "train on an inf image": Case("train {w}/poisoned " + TRAIN + " -o {t}/m.safetensors", 2,
                                  "poisoned/images/a.tif: the image holds no finite pixel"),
    "train disk full": Case("train synthetic:embryo " + TRAIN + " --overwrite -o {t}/m.safetensors", 1,
                            "m.safetensors: the disk is full", _full_disk("safetensors.torch", "save_file")),
    # synth
    "synth --size 100000": Case("synth {t}/d --size 100000", 2, "over the limit of 268,435,456"),
    "synth over a dataset": Case("synth {t}/d --n 3 --size 32", 2, "already holds images/embryo_0000.tif", _users_image),
    "synth --n 0": Case("synth {t}/d --n 0", 2, "--n must be at least 1"),
    "synth --size 10": Case("synth {t}/d --size 10", 2, "--size must be at least 32"),
    "synth into a file": Case("synth {w}/a_file --size 32", 2, "is a file; give the dataset folder"),
    "synth disk full": Case("synth {t}/d --n 1 --size 32", 1, "embryo_0000.tif: the disk is full", _full_disk("tifffile", "imwrite")),
    # images to segment
    "segment no file": Case("segment {t}/missing.tif -o {t}/out", 2, "no image file"),
    "segment a folder": Case("segment {w}/folder.tif -o {t}/out", 2, "no image file"),
    "segment not a tiff": Case(SEG.replace("frame.tif", "not_a.tif") + " -o {t}/out", 2, "cannot read"),
    "segment huge declared": Case(SEG.replace("frame.tif", "huge.tif") + " -o {t}/out", 2, "30000 x 30000 = 900,000,000 pixels"),
    "segment with a small budget": Case(SEG + " -o {t}/out", 2, "raise the limit with the environment variable BLASTOSEG_MAX_PIXELS",
                                        _env("BLASTOSEG_MAX_PIXELS", "1000")),
    "segment with a garbled budget": Case(SEG + " -o {t}/out", 2, "BLASTOSEG_MAX_PIXELS='lots' is not a number",
                                          _env("BLASTOSEG_MAX_PIXELS", "lots")),
    "segment 5D": Case(SEG.replace("frame.tif", "five_d.tif") + " -o {t}/out", 2, "expected a 2D frame (H, W) or a time-lapse"),
    "segment 8x8": Case(SEG.replace("frame.tif", "tiny.tif") + " -o {t}/out", 2, "at least 16x16 pixels"),
    "segment all NaN": Case(SEG.replace("frame.tif", "all_nan.tif") + " -o {t}/out", 2, "no finite pixel"),
    "segment --tile 0": Case(SEG + " --tile 0 -o {t}/out", 2, "tile size 0 is too small"),
    "segment a pickle model": Case("segment {w}/frame.tif -m {w}/junk.safetensors -o {t}/out", 2, "not a safetensors file"),
    "segment a folder model": Case("segment {w}/frame.tif -m {w}/folder.safetensors -o {t}/out", 2, "is a folder, not a checkpoint"),
    "segment a NaN model": Case("segment {w}/frame.tif -m {w}/nan.safetensors -o {t}/out", 2, "NaN or infinite; the model was damaged"),
    "segment disk full": Case(SEG + " -o {t}", 1, "frame_visible.tif: the disk is full", _full_disk("tifffile", "imwrite")),
    # results to measure and evaluate
    "measure without frames": Case("measure {w}/no_frames_amodal.tif -o {t}/m.csv", 2, "metadata is damaged (no 'frames' list)"),
    "measure short metadata": Case("measure {w}/short_amodal.tif -o {t}/m.csv", 2, "2 frame entries for 3 frames"),
    "measure --frame-interval 0": Case("measure {w}/movie_amodal.tif --frame-interval 0 -o {t}/m.csv", 2, "frame interval must be a positive"),
    "measure --frame-interval -1": Case("measure {w}/movie_amodal.tif --frame-interval -1 -o {t}/m.csv", 2, "frame interval"),
    "measure --pixel-size nan": Case("measure {w}/result_amodal.tif --pixel-size nan -o {t}/m.csv", 2, "pixel size must be a positive"),
    "measure floats": Case("measure {w}/floats.tif -o {t}/m.csv", 2, "does not hold integer labels"),
    "measure huge": Case("measure {w}/huge.tif -o {t}/m.csv", 2, "over the limit"),
    "evaluate no names match": Case("evaluate {w}/preds {w}/ds", 2, "no prediction in"),
    "evaluate shapes differ": Case("evaluate {w}/wrong_shape {w}/ds", 2, "is (40, 40) but its ground truth is (48, 48)"),
    "evaluate --threshold 2": Case("evaluate {w}/ds {w}/ds --threshold 2", 2, "--threshold is a score between 0 and 1"),
    "tune --n 0": Case("tune {w}/tiny.safetensors synthetic:embryo --n 0 -o {t}/t.safetensors", 2, "--n must be at least 1"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_command_line_input(name, world, tmp_path, capsys, monkeypatch, one_thread):
    case = CASES[name]
    if "cuda" in case.argv and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    monkeypatch.setattr("platformdirs.user_data_dir", lambda *a, **k: str(tmp_path / "user"))
    monkeypatch.delenv("BLASTOSEG_MAX_PIXELS", raising=False)
    if case.prepare:
        case.prepare(tmp_path, monkeypatch)
    before = _snapshot(world, tmp_path)
    capsys.readouterr()
    code = main(case.argv.replace("{w}", str(world)).replace("{t}", str(tmp_path)).split())
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == case.code, err
    assert len(errors) == 1 and case.message in errors[0], err
    bars = re.compile(r"\[\d\d:\d\d")  # tqdm's progress bars show the time taken
    noise = [line for line in re.split(r"[\r\n]", err) if line.strip() and not line.startswith("blastoseg") and not bars.search(line)]
    assert noise == [], err
    after = _snapshot(world, tmp_path)
    assert {p: after.get(p) for p in before} == before  # nothing that existed was touched
    assert [p for p in after if is_temporary(p)] == []  # nor a temporary left behind


def test_segment_after_a_full_disk_leaves_no_amodal_without_its_visible(world, tmp_path, capsys, monkeypatch):
    """The amodal file is written last: it is never there without its visible labels."""
    real = tifffile.imwrite
    calls = []

    def full_on_amodal(file, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(Path(file).name)
        if len(calls) == 2:  # visible labels written; the amodal file does not fit
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", full_on_amodal)
    assert main((SEG.replace("{w}", str(world)) + f" -o {tmp_path}").split()) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "frame_amodal.tif: the disk is full" in errors[0]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["frame_visible.tif", "manifest.csv"]  # the batch run records the failure
    from blastoseg.batch.manifest import read

    (row,) = read(tmp_path / "manifest.csv").values()
    assert row["status"] == "failed" and "the disk is full" in row["error"] and row["outputs"] == ""


def test_a_nan_pixel_is_a_notice_not_zero_cells(world, tmp_path, capsys):
    assert main(SEG.replace("frame.tif", "one_nan.tif").replace("{w}", str(world)).split() + ["-o", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "blastoseg: warning: 1 of 2304 pixels are NaN or infinite" in err and "Traceback" not in err


def test_info_names_the_unreadable_models(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("platformdirs.user_data_dir", lambda *a, **k: str(tmp_path))
    (tmp_path / "models").mkdir()
    for name in ("tiny", "junk", "nan"):
        (tmp_path / "models" / f"{name}.safetensors").write_bytes((world / f"{name}.safetensors").read_bytes())
    (tmp_path / "models" / "x.safetensors").mkdir()
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "junk                 unreadable" in out and "x                    unreadable" in out


# ---------------------------------------------------------------------- the Python API
@pytest.fixture(scope="module")
def tiny(world):
    return checkpoint.load(world / "tiny.safetensors", device="cpu")


FRAME = (np.random.default_rng(1).random((48, 48)) * 255).astype(np.float32)


def _ragged() -> list:
    return [[1.0, 2.0], [3.0]]


API_CASES = {
    "a file name": (lambda: "frame.tif", {}, TypeError, "use blastoseg.segment_file"),
    "a Path": (lambda: Path("frame.tif"), {}, TypeError, "pass a numpy array"),
    "tta='no'": (lambda: FRAME, {"tta": "no"}, TypeError, "tta must be True or False; got 'no'"),
    "auto_scale=1": (lambda: FRAME, {"auto_scale": 1}, TypeError, "auto_scale must be True or False"),
    "strings": (lambda: np.full((20, 20), "a"), {}, ValueError, "image pixels must be numbers"),
    "complex": (lambda: np.zeros((20, 20), np.complex64), {}, ValueError, "image pixels must be numbers"),
    "ragged list": (_ragged, {}, TypeError, "cannot read list as an image"),
    "all NaN": (lambda: np.full((20, 20), np.nan), {}, ValueError, "no finite pixel"),
    "a stack to segment()": (lambda: np.zeros((5, 20, 20)), {}, ValueError, "Use segment_frames() for stacks"),
    "4D": (lambda: np.zeros((2, 2, 20, 20)), {}, ValueError, "expected a 2D frame"),
    "device gpu": (lambda: FRAME, {"device": "gpu"}, ValueError, "unknown device 'gpu'"),
    "tile 0": (lambda: FRAME, {"tile": 0}, ValueError, "tile size 0 is too small"),
}


@pytest.mark.parametrize("name", list(API_CASES))
def test_bad_api_input(name, tiny):
    from blastoseg import segment

    make, kwargs, error, text = API_CASES[name]
    image = make()
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        segment(image, tiny, **{"tta": False, "device": "cpu", **kwargs})


def test_an_unknown_model_name_lists_the_known_ones():
    from blastoseg import segment

    with pytest.raises(FileNotFoundError, match="known models: .*embedseg"):
        segment(FRAME, "no-such-model", tta=False, device="cpu")


@pytest.mark.parametrize("convert", [
    pytest.param(lambda a: torch.from_numpy(a), id="tensor"),
    pytest.param(lambda a: torch.from_numpy(a).requires_grad_(), id="tensor with grad"),
    pytest.param(lambda a: da.from_array(a, chunks=24), id="dask"),
    pytest.param(lambda a: a.tolist(), id="nested lists"),
])
def test_tensors_and_dask_arrays_are_accepted(convert, tiny):
    from blastoseg import segment

    expected = segment(FRAME, tiny, tta=False, device="cpu")
    assert segment(convert(FRAME), tiny, tta=False, device="cpu") == expected


def test_three_planes_are_said_to_be_read_as_frames(tiny):
    from blastoseg import segment_frames

    with pytest.warns(Notice, match="read as 3 frames"):
        assert len(segment_frames(np.stack([FRAME] * 3), tiny, tta=False, device="cpu")) == 3


def test_read_amodal_never_drops_frames(world):
    with pytest.raises(ValueError, match="2 frame entries for 3 frames"):
        io.read_amodal(world / "short_amodal.tif")


# ---------------------------------------------------------------------- a killed training run
def test_a_training_run_killed_mid_save_leaves_a_loadable_checkpoint(world, tmp_path):
    output = tmp_path / "m.safetensors"
    argv = ["train", str(world / "ds"), "--steps", "100000", "--validate-every", "1", "--batch", "1", "--crop", "32",
            "--device", "cpu", "--config", json.dumps(TINY), "-o", str(output)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    code = f"import sys; from blastoseg.cli import main; sys.exit(main({argv!r}))"
    run = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not output.exists() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
        assert output.exists(), "training saved nothing"
        saves = output.stat().st_mtime_ns
        while output.stat().st_mtime_ns == saves and time.monotonic() < deadline:  # it saves every step
            time.sleep(0.01)
        time.sleep(0.13)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL
    model = checkpoint.load(output, device="cpu")
    assert model.method.name == "embedseg" and model.metadata["training"]["steps"] >= 2
    checkpoint.save(model, tmp_path / "next.safetensors")  # the next write clears what the kill left
    assert [p.name for p in tmp_path.iterdir() if is_temporary(p)] == []
