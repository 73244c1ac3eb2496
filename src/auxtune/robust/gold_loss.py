"""Gold Loss Correction (Hendrycks, Mazeika, Wilson & Gimpel 2018): the math.

Stage 1 trains a model on the untrusted (noisy) images; its softmax p(noisy | x) on the trusted
images, whose clean class c is known, estimates the corruption matrix row by row:

    C_hat[c] = mean over trusted images x of class c of softmax(f_1(x))

Stage 2 trains a fresh model with the main loss

    trusted x:    CE(f(x), y)                              (the clean label)
    untrusted x:  -log (softmax(f(x)) @ C_hat)[y_noisy]    (the noisy label, through C_hat)

averaged over the batch, so f itself learns p(clean | x). Only the main loss changes: auxiliary
heads and every weighting see the same named losses as without correction.

    >>> probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    >>> estimate_corruption_matrix(probs, torch.tensor([0, 0, 1]), num_classes=2)
    tensor([[0.8000, 0.2000],
            [0.2000, 0.8000]])
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

MIN_PROBABILITY = 1e-12  # floor of C_hat inside the log: a zero entry must not make the loss inf


def estimate_corruption_matrix(
    probs: torch.Tensor, clean_labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """C_hat (K, K): row c is the mean of ``probs`` (N, K) over the rows whose clean label is c."""
    counts = torch.bincount(clean_labels, minlength=num_classes)
    missing = torch.nonzero(counts == 0).flatten().tolist()
    if missing:
        raise ValueError(
            f"no trusted image of class {missing[0]}: every class needs one to estimate its row "
            "of the corruption matrix (raise label_noise.trusted_fraction)"
        )
    sums = probs.new_zeros(num_classes, probs.shape[1]).index_add_(0, clean_labels, probs)
    return sums / counts[:, None].to(probs.dtype)


def corrected_log_likelihood(logits: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """log p(noisy label j | x) = log sum_c softmax(logits)_c C[c, j], as (N, K), computed in log
    space (float32 at least) so small probabilities do not underflow."""
    log_probs = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
    log_matrix = matrix.to(log_probs.dtype).clamp_min(MIN_PROBABILITY).log()
    return torch.logsumexp(log_probs[:, :, None] + log_matrix[None], dim=1)


def gold_corrected_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, trusted: torch.Tensor, matrix: torch.Tensor
) -> torch.Tensor:
    """Batch mean of CE on ``trusted`` rows and of the C-corrected CE on the others."""
    clean = F.cross_entropy(logits.float(), labels, reduction="none")
    noisy = -corrected_log_likelihood(logits, matrix).gather(1, labels[:, None]).squeeze(1)
    return torch.where(trusted, clean, noisy).mean()


def matrix_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean absolute difference of two corruption matrices (0 = recovered exactly)."""
    return float((estimate.double() - truth.double()).abs().mean())
