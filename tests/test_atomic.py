"""Atomic writes, and the temporaries an interrupted write leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from blastoseg import atomic, catalogue, io
from blastoseg.training import datasets


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.parametrize("name", [".r.123-0123456789ab.tmp.tif", ".r.0123456789ab.tmp.tif", ".m-abcd_123.tmp",
                                  ".my model.99-0123456789ab.tmp.safetensors"])
def test_temporary_names_are_recognised(name):
    assert atomic.is_temporary(name)


@pytest.mark.parametrize("name", ["r.tif", ".hidden.tif", "r.tmp.tif", "embryo_0000.tif", ".tmp"])
def test_ordinary_names_are_not_temporaries(name):
    assert not atomic.is_temporary(name)


def test_a_killed_writers_temporary_is_removed_by_the_next_write_and_a_live_one_kept(tmp_path):
    dead = tmp_path / f".a.{_dead_pid()}-0123456789ab.tmp.tif"
    alive = tmp_path / f".b.{os.getppid()}-0123456789ab.tmp.tif"  # a running process's write in progress
    old = tmp_path / ".c.0123456789ab.tmp.tif"  # an earlier version's name, without a pid
    recent = tmp_path / ".d.0123456789ab.tmp.tif"
    for path in (dead, alive, old, recent):
        path.write_bytes(b"partial")
    long_ago = time.time() - atomic.STALE_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    mine = tmp_path / "mine.tif"
    mine.write_bytes(b"the user's")
    io.write_image(tmp_path / "new.tif", np.zeros((4, 4), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, recent.name, "mine.tif", "new.tif"])
    assert mine.read_bytes() == b"the user's"


def test_readers_skip_temporaries(tmp_path, monkeypatch):
    frames, _ = io.read_amodal(io.write_amodal(tmp_path / "x.tif", _one_cell()))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    io.write_image(tmp_path / "images" / "a.tif", np.ones((20, 20), np.float32))
    io.write_amodal(tmp_path / "masks" / "a.tif", frames[0])
    for sub in ("images", "masks"):
        (tmp_path / sub / f".a.{os.getppid()}-0123456789ab.tmp.tif").write_bytes(b"partial")
    assert datasets.list_dataset(tmp_path) == ["a"]
    assert list(datasets.read_instances_dir(tmp_path)) == ["a"]
    monkeypatch.setattr(catalogue, "user_models_dir", lambda: tmp_path)
    (tmp_path / f".m.{os.getppid()}-0123456789ab.tmp.safetensors").write_bytes(b"partial")
    assert not any(name.startswith(".") for name in catalogue.list_models())


def test_a_failed_write_names_the_real_file_not_the_temporary(tmp_path):
    import errno

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError) as caught:
        atomic.atomic_write(tmp_path / "out.tif", full)
    assert caught.value.filename == str(tmp_path / "out.tif") and list(tmp_path.iterdir()) == []


def test_writing_over_a_folder_is_refused(tmp_path):
    (tmp_path / "out.tif").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        io.write_image(tmp_path / "out.tif", np.zeros((4, 4), np.uint8))


def _one_cell():
    from blastoseg.instances import Instances

    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:12] = True
    return Instances.from_mask_stack(mask[None])
