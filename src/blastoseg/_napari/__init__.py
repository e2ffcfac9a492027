"""napari front end of blastoseg: one dock with three tabs, sample data, a reader and a writer.

Everything here is thin: the work is done by the napari-free core (predict, train,
measure, io); these modules only move data between layers and that core.
"""
