"""`blastoseg info`: versions, devices and the models found."""

from __future__ import annotations

import argparse
import sys

from blastoseg.cli.common import warn


def run(args: argparse.Namespace) -> int:
    import platform

    from blastoseg import __version__

    print(f"blastoseg {__version__}")
    print(f"python    {platform.python_version()} ({sys.executable})")
    try:
        import torch
    except ImportError:
        print("torch     not installed")
    else:
        print(f"torch     {torch.__version__}")
        cuda = torch.cuda.is_available()
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ""
        print(f"CUDA      {'yes: ' + gpus if cuda else 'no'}")
        mps = getattr(torch.backends, "mps", None)
        print(f"MPS       {'yes' if mps is not None and mps.is_available() else 'no'}")
    from blastoseg.catalogue import list_models
    from blastoseg.checkpoint import read_metadata

    models = list_models()
    print(f"models    {len(models)} found")
    unreadable = 0
    for name, path in models.items():
        try:  # one damaged file must not hide the others
            method = str(read_metadata(path).get("method", "?"))
        except (ValueError, OSError) as error:
            method, unreadable = f"unreadable: {error}", unreadable + 1
        print(f"  {name:<20} {method:<10} {path}")
    if unreadable:
        warn(f"{unreadable} of the models above cannot be read; move or delete them, or train them again")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions, devices and installed models")
    p.set_defaults(func=run)
