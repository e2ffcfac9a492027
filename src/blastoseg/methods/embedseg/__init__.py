"""EmbedSeg: spatial embeddings to the medoid (`method`), with its medoid and Lovasz-hinge helpers."""

from blastoseg.methods.embedseg.method import METHOD

__all__ = ["METHOD"]
