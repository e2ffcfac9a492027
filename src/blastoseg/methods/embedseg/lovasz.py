"""Lovasz hinge (Berman, Rannen Triki & Blaschko, CVPR 2018), batched over instances.

The Lovasz extension of the Jaccard loss is a convex surrogate of 1 - IoU: sort the
hinge errors, weight each by the change in Jaccard index it causes, and sum.
"""

from __future__ import annotations

import torch


def _jaccard_gradient(sorted_truth: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """(K, P) truths sorted by decreasing error and (K, 1) positive counts -> Jaccard increments."""
    intersection = positives - sorted_truth.cumsum(1)
    union = positives + (1 - sorted_truth).cumsum(1)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)


def lovasz_hinge(logits: torch.Tensor, truth: torch.Tensor, top: int | None = None) -> torch.Tensor:
    """(K, P) logits and 0/1 truths -> (K,) Lovasz hinge losses.

    With `top`, only the `top` largest errors of each row enter the sum. The increments
    of those depend only on the larger errors before them, so they are exact; what is
    dropped is the tail of smallest errors (confident, correct pixels in practice).
    """
    signs = 2 * truth - 1
    errors = 1 - logits * signs
    positives = truth.sum(1, keepdim=True)
    if top is not None and top < errors.shape[1]:
        errors_sorted, order = torch.topk(errors, top, dim=1, sorted=True)
    else:
        errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    grad = _jaccard_gradient(torch.gather(truth, 1, order), positives)
    return (torch.relu(errors_sorted) * grad).sum(1)
