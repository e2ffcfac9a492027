"""Inference: from a raw frame to `Instances`.

`preprocess` validates and normalises frames, `localise` finds the embryo by its zona,
`framing` and `object_size` choose the window and scale a model sees them at,
`plausible` keeps the instances that can be blastomeres, `tiling` cuts large frames, `merging` merges TTA
views and tile seams, and `predict` runs the whole pass.
"""
