"""The dock widgets: Segment embryo, Train on corrections, Measure blastomeres."""
