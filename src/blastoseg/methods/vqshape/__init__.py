"""VQ shape codes: amodal Mask R-CNN (`method`), its heads (`heads`) and VQ-VAE shape prior (`vqvae`)."""

from blastoseg.methods.vqshape.method import METHOD

__all__ = ["METHOD"]
