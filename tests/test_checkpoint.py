"""Checkpoints: round trip, refusal of pickles and foreign files, atomic writes, devices."""

import pickle

import pytest
import torch

from blastoseg import catalogue, checkpoint
from blastoseg.checkpoint import CheckpointError
from blastoseg.device import resolve_device
from blastoseg.model import new_model

TINY = {"net_options": {"base": 4, "depth": 2, "full_res": 4}}


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = new_model("embedseg", TINY)
    path = checkpoint.save(model, tmp_path / "tiny.safetensors", scores={"AP50": 0.5})
    loaded = checkpoint.load(path, device="cpu")
    assert loaded.method.name == "embedseg"
    assert loaded.config["net_options"] == TINY["net_options"]
    assert loaded.metadata["scores"] == {"AP50": 0.5}
    for (name, a), (_, b) in zip(model.net.state_dict().items(), loaded.net.state_dict().items()):
        assert torch.equal(a, b), name
    assert len(loaded.sha256) == 64


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_pickle_renamed_safetensors_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"state": _Evil(marker)}))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        checkpoint.load(path, device="cpu")
    assert not marker.exists()


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a blastoseg checkpoint"):
        checkpoint.load(path, device="cpu")


def test_missing_model_names_the_known_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model named"):
        checkpoint.load(tmp_path / "nope.safetensors", device="cpu")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    model = new_model("embedseg", TINY)
    path = checkpoint.save(model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_registry_lists_user_models(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "user_models_dir", lambda: tmp_path)
    checkpoint.save(new_model("embedseg", TINY), tmp_path / "mine.safetensors")
    assert catalogue.list_models()["mine"] == tmp_path / "mine.safetensors"


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device(" CPU ") == torch.device("cpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ValueError, match="no CUDA"):
                resolve_device(name)
    for name, hint in (("gpu", "an NVIDIA GPU is 'cuda'"), ("tpu", "use auto, cpu"), ("cuda:x", "use auto"), ("", "use auto")):
        with pytest.raises(ValueError, match=hint):
            resolve_device(name)
    with pytest.raises(ValueError, match="a device is one of"):
        resolve_device(3)


def test_saved_checkpoints_are_readable_by_others(tmp_path):
    import os
    import stat

    path = checkpoint.save(new_model("embedseg", TINY), tmp_path / "shared.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_new_model_starts_from_the_same_weights_for_the_same_seed():
    import torch

    from blastoseg.model import new_model

    state = torch.get_rng_state()
    a, b, c = (new_model("embedseg", seed=s).net.state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched


@pytest.mark.parametrize("net", ["unet", "erfnet"])
def test_embedseg_offsets_and_sigma_start_at_zero(net):
    import torch

    from blastoseg.model import new_model

    model = new_model("embedseg", {"net": net, "net_options": {}})
    raw = model.net.eval()(torch.rand(1, 1, 64, 64))
    assert raw.shape[1] == 5 and torch.count_nonzero(raw[:, :4]) == 0 and torch.count_nonzero(raw[:, 4]) > 0


def test_nan_weights_are_never_saved_nor_loaded(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = new_model("embedseg", TINY)
    good = checkpoint.save(model, tmp_path / "m.safetensors")
    before = good.read_bytes()
    with torch.no_grad():
        next(model.net.parameters())[0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        checkpoint.save(model, good)
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    # A NaN model written by an earlier version is refused at loading, not run to find nothing.
    with safe_open(str(good), "pt") as handle:
        meta = handle.metadata()
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(tmp_path / "nan.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="NaN or infinite.*Train it again"):
        checkpoint.load(tmp_path / "nan.safetensors", device="cpu")


@pytest.mark.parametrize("edit", [{"method": "nonesuch"}, {"method": ["embedseg"]}, {"config": [1, 2]},
                                  {"pipeline": {"working_size": 2}}, {"config": {"net_options": {"base": "x"}}}])
def test_damaged_metadata_is_a_checkpoint_error(tmp_path, edit):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    path = checkpoint.save(new_model("embedseg", TINY), tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as handle:
        meta, state = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    meta.update({k: json.dumps(v) for k, v in edit.items()})
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="m.safetensors"):
        checkpoint.load(path, device="cpu")


def test_a_truncated_checkpoint_is_a_checkpoint_error(tmp_path):
    path = checkpoint.save(new_model("embedseg", TINY), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        checkpoint.load(path, device="cpu")


def test_a_folder_named_like_a_checkpoint_is_named_as_a_folder(tmp_path):
    (tmp_path / "x.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        checkpoint.read_metadata(tmp_path / "x.safetensors")
