"""Synthetic training data with exact amodal ground truth.

`scene` describes a sample, `bodies` the 3D cell geometry, `embryo` builds embryos and
time-lapses from them, `render` forms their image, and `shapes` draws the outlined-shapes
protocol of seed paper 002.
"""

from blastoseg.synth.embryo import synth_dish, synth_embryo, synth_timelapse
from blastoseg.synth.scene import Sample
from blastoseg.synth.shapes import synth_shapes

__all__ = ["Sample", "synth_dish", "synth_embryo", "synth_shapes", "synth_timelapse"]
