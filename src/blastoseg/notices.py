"""Notices: things a user should know about their input that are not errors.

Library code tells them through a `notify` callback when the caller gave one (napari
shows a notification, `segment_file` prints the file's name with it), and otherwise as
a Python warning of category `Notice`, which the command line prints as one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable


class Notice(UserWarning):
    """An input read other than its owner may expect: non-finite pixels left out of the
    normalisation, a (3, H, W) array taken as 3 frames, colour made grey."""


def tell(message: str, notify: Callable[[str], None] | None = None, *, stacklevel: int = 3) -> None:
    """`notify(message)`, or a `Notice` warning pointing at the caller's caller."""
    if notify is not None:
        notify(message)
    else:
        warnings.warn(message, Notice, stacklevel=stacklevel)
