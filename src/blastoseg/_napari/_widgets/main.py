"""The blastoseg dock widget: Segment, Correct & train and Measure as tabs of one dock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QFrame, QLabel, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from blastoseg._napari._reader import prefer_blastoseg, replace_builtin_reads
from blastoseg._napari._widgets import tasks
from blastoseg._napari._widgets.correct import CorrectWidget
from blastoseg._napari._widgets.measure import MeasureWidget
from blastoseg._napari._widgets.results import Results
from blastoseg._napari._widgets.segment import SegmentWidget
from blastoseg._napari._widgets.train import TrainWidget

if TYPE_CHECKING:
    import napari

WIDTH = 380  # px: leaves a 1366 px wide window most of its width for the canvas


def _page(*parts: QWidget) -> QScrollArea:
    """A tab: `parts` at their natural height, top to bottom, scrolling if the dock is shorter."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    for part in parts:
        layout.addWidget(part)
    layout.addStretch(1)  # the parts keep their natural height; the rest of the tab is empty
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(page)
    return area


class BlastosegWidget(QWidget):
    """One dock with three tabs, in the order of the work: Segment, Correct & train, Measure.
    Each tab fits a 1366 x 768 screen; options most people leave alone are folded
    under "Advanced"."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.results = Results.of(viewer)
        self.segment = SegmentWidget(viewer)
        self.correct = CorrectWidget(viewer, image=lambda: self.segment._image.value)
        self.train = TrainWidget(viewer)
        self.measure = MeasureWidget(viewer)
        self.tabs = QTabWidget()
        self.tabs.addTab(_page(self.segment.native), "Segment")
        heading = QLabel("<b>Train on your corrections</b>")
        heading.setContentsMargins(6, 6, 0, 0)
        self.tabs.addTab(_page(self.correct.native, heading, self.train.native), "Correct && train")
        self.tabs.addTab(_page(self.measure.native), "Measure")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.tabs)
        self.setMinimumWidth(WIDTH)
        self.setMaximumWidth(WIDTH + 200)
        self.results.events.run_added.connect(self._run_added)
        self.correct._result.changed.connect(self._result_changed)
        prefer_blastoseg()
        replace_builtin_reads(viewer)
        QTimer.singleShot(1000, tasks.warm_up)

    def _image(self, name: str) -> Any:
        from napari.layers import Image

        return next((x for x in self.viewer.layers if isinstance(x, Image) and x.name == name), None)

    def _run_added(self, run: str) -> None:
        found = self.results.run(run)
        image = self._image(found.source) if found else None
        if image is not None:
            for widget in (self.train, self.measure):
                widget.reset_choices()
                widget._image.value = image

    def _result_changed(self, run: Any) -> None:
        found = self.results.run(run) if run else None
        image = self._image(found.source) if found else None
        if image is not None:
            self.train.reset_choices()
            self.train._image.value = image
