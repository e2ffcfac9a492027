"""Training: where annotated images come from, how they are augmented, the training loop
and the tuning of post-processing settings on held-out images."""
