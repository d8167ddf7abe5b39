"""Distillation losses: small pure functions of logits, averaged over the positions a mask keeps.

Shapes: logits (..., vocab), mask (...) of 0/1 (1 = a position of the teacher's continuation).
Distributions are softened by a temperature T (logits / T); the KL terms are scaled by T^2 so
their gradients keep the same size whatever T (Hinton et al., 2015).

- forward KL:  KL(teacher || student), mode covering: the student spreads over what the teacher
  might say;
- reverse KL:  KL(student || teacher), mode seeking: the student commits to the teacher's likely
  tokens;
- generalised JSD with beta in [0, 1] (GKD, Agarwal et al. 2024), with the mixture
  M = beta * teacher + (1 - beta) * student:  beta * KL(teacher || M) + (1 - beta) * KL(student || M).
  As in TRL's GKD trainer, beta = 0 is forward KL and beta = 1 reverse KL (the mixture
  degenerates there), so beta moves between the two;
- cross-entropy on the teacher's tokens (the sequence-level "hard" target), optionally mixed in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("forward_kl", "reverse_kl", "jsd")


def _masked_mean(per_position: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_position.mean()
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def forward_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    s = F.log_softmax(student_logits / temperature, -1)
    t = F.log_softmax(teacher_logits / temperature, -1)
    return _masked_mean(_kl(t, s), mask) * temperature**2


def reverse_kl(student_logits, teacher_logits, mask=None, temperature: float = 1.0) -> torch.Tensor:
    s = F.log_softmax(student_logits / temperature, -1)
    t = F.log_softmax(teacher_logits / temperature, -1)
    return _masked_mean(_kl(s, t), mask) * temperature**2


def generalised_jsd(
    student_logits, teacher_logits, mask=None, beta: float = 0.5, temperature: float = 1.0
) -> torch.Tensor:
    if not 0.0 <= beta <= 1.0:
        raise ValueError("beta is between 0 and 1")
    if beta == 0.0:
        return forward_kl(student_logits, teacher_logits, mask, temperature)
    if beta == 1.0:
        return reverse_kl(student_logits, teacher_logits, mask, temperature)
    s = F.log_softmax(student_logits / temperature, -1)
    t = F.log_softmax(teacher_logits / temperature, -1)
    m = torch.logsumexp(torch.stack([t + math.log(beta), s + math.log(1 - beta)]), 0)
    per_position = beta * _kl(t, m) + (1 - beta) * _kl(s, m)
    return _masked_mean(per_position, mask) * temperature**2


def cross_entropy(student_logits, labels, mask=None) -> torch.Tensor:
    """Mean negative log-likelihood of `labels` (token ids, same leading shape as the logits)."""
    nll = F.cross_entropy(student_logits.flatten(0, -2), labels.flatten(), reduction="none")
    return _masked_mean(nll.view(labels.shape), mask)


def distillation_loss(
    student_logits,
    teacher_logits,
    labels,
    mask=None,
    kind: str = "forward_kl",
    temperature: float = 1.0,
    beta: float = 0.5,
    ce_weight: float = 0.0,
) -> torch.Tensor:
    """(1 - ce_weight) * the chosen divergence + ce_weight * cross-entropy on the teacher's
    tokens. `ce_weight=1` with no teacher logits at all is plain fine-tuning (the baseline)."""
    if kind not in KINDS:
        raise ValueError(f"loss kind is one of {', '.join(KINDS)}")
    ce = cross_entropy(student_logits, labels, mask) if ce_weight else 0.0
    if ce_weight >= 1.0:
        return ce
    if kind == "forward_kl":
        divergence = forward_kl(student_logits, teacher_logits, mask, temperature)
    elif kind == "reverse_kl":
        divergence = reverse_kl(student_logits, teacher_logits, mask, temperature)
    else:
        divergence = generalised_jsd(student_logits, teacher_logits, mask, beta, temperature)
    return (1 - ce_weight) * divergence + ce_weight * ce
