"""napari's settings are fresh for every test and never saved (as napari's own tests keep them)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_napari_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari import settings
    from napari.settings import NapariSettings

    monkeypatch.setattr(NapariSettings, "save", lambda self, path=None, **kwargs: None)
    monkeypatch.setattr(settings, "_SETTINGS", NapariSettings(config_path=None))
