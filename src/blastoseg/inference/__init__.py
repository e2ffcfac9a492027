"""Inference: from a raw frame to Instances."""
