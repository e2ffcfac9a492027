"""One default model for every door: Python's segment, the command line and napari."""

from __future__ import annotations

import numpy as np
import pytest

from blastoseg import catalogue
from blastoseg.inference import predict


class _Asked(Exception):
    pass


def test_python_cli_and_napari_default_to_the_same_shipped_model(monkeypatch):
    from blastoseg._napari._widgets.models import default_model
    from blastoseg.cli import build_parser

    models = catalogue.list_models()
    assert catalogue.default_model_name() == catalogue.DEFAULT_MODEL and catalogue.DEFAULT_MODEL in models
    assert default_model(models) == models[catalogue.DEFAULT_MODEL]
    assert build_parser().parse_args(["segment", "x.tif", "-o", "out"]).model is None  # resolved by default_model_name

    def load(name, device="auto"):
        raise _Asked(name)

    monkeypatch.setattr(predict, "load", load)
    with pytest.raises(_Asked, match=catalogue.DEFAULT_MODEL):
        predict.segment(np.zeros((32, 32), np.float32))
