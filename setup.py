"""Packages of blastoseg, and its shipped models as package data.

The trained checkpoints live in the repository's `models/` folder, so that every tool
and document names them there; a wheel carries them as `blastoseg/models/`, where
`blastoseg.catalogue.shipped_models_dir` finds them once installed.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "blastoseg.models"],
    package_dir={"": "src", "blastoseg.models": "models"},
    package_data={"blastoseg": ["napari.yaml"], "blastoseg.models": ["*.safetensors", "stages/*.safetensors"]},
)
