"""Distillation losses against values worked out by hand on a two-token vocabulary.

Student logits [0, 0]: p_S = [1/2, 1/2]. Teacher logits [ln 3, 0]: p_T = [3/4, 1/4].
"""

import math

import pytest
import torch

from prsm.distill.losses import (
    cross_entropy,
    distillation_loss,
    forward_kl,
    generalised_jsd,
    reverse_kl,
)

S = torch.tensor([[0.0, 0.0]])
T = torch.tensor([[math.log(3), 0.0]])
ln = math.log


def test_forward_kl_is_kl_teacher_to_student():
    expected = 0.75 * ln(0.75 / 0.5) + 0.25 * ln(0.25 / 0.5)  # 0.130812
    assert forward_kl(S, T).item() == pytest.approx(expected, abs=1e-6)


def test_reverse_kl_is_kl_student_to_teacher():
    expected = 0.5 * ln(0.5 / 0.75) + 0.5 * ln(0.5 / 0.25)  # 0.143841
    assert reverse_kl(S, T).item() == pytest.approx(expected, abs=1e-6)


def test_generalised_jsd_with_beta_one_half():
    m = [0.625, 0.375]  # beta * p_T + (1 - beta) * p_S
    kl_t = 0.75 * ln(0.75 / m[0]) + 0.25 * ln(0.25 / m[1])
    kl_s = 0.5 * ln(0.5 / m[0]) + 0.5 * ln(0.5 / m[1])
    assert generalised_jsd(S, T, beta=0.5).item() == pytest.approx(
        0.5 * kl_t + 0.5 * kl_s, abs=1e-6
    )  # 0.033822


def test_generalised_jsd_with_an_uneven_beta():
    beta = 0.9
    m = [beta * 0.75 + 0.1 * 0.5, beta * 0.25 + 0.1 * 0.5]
    kl_t = 0.75 * ln(0.75 / m[0]) + 0.25 * ln(0.25 / m[1])
    kl_s = 0.5 * ln(0.5 / m[0]) + 0.5 * ln(0.5 / m[1])
    assert generalised_jsd(S, T, beta=beta).item() == pytest.approx(beta * kl_t + 0.1 * kl_s, abs=1e-6)


def test_jsd_ends_are_forward_and_reverse_kl():
    assert generalised_jsd(S, T, beta=0.0).item() == pytest.approx(forward_kl(S, T).item())
    assert generalised_jsd(S, T, beta=1.0).item() == pytest.approx(reverse_kl(S, T).item())
    with pytest.raises(ValueError):
        generalised_jsd(S, T, beta=1.5)


def test_temperature_softens_then_scales_by_t_squared():
    p = [math.sqrt(3) / (math.sqrt(3) + 1), 1 / (math.sqrt(3) + 1)]  # softmax([ln 3 / 2, 0])
    expected = 4 * (p[0] * ln(p[0] / 0.5) + p[1] * ln(p[1] / 0.5))  # 0.145368
    assert forward_kl(S, T, temperature=2.0).item() == pytest.approx(expected, abs=1e-6)


def test_identical_distributions_cost_nothing():
    for loss in (forward_kl, reverse_kl, generalised_jsd):
        assert loss(T, T).item() == pytest.approx(0.0, abs=1e-7)


def test_the_mask_keeps_only_continuation_positions():
    student = torch.stack([S[0], torch.tensor([5.0, -5.0])])[None]  # (batch 1, 2 positions, vocab 2)
    teacher = torch.stack([T[0], torch.tensor([-5.0, 5.0])])[None]
    mask = torch.tensor([[1, 0]])
    assert forward_kl(student, teacher, mask).item() == pytest.approx(forward_kl(S, T).item(), abs=1e-6)
    labels = torch.tensor([[0, 1]])
    assert cross_entropy(student, labels, mask).item() == pytest.approx(ln(2), abs=1e-6)


def test_cross_entropy_can_be_mixed_in():
    labels = torch.tensor([0])
    mixed = distillation_loss(S, T, labels, kind="reverse_kl", ce_weight=0.25)
    expected = 0.75 * reverse_kl(S, T).item() + 0.25 * ln(2)
    assert mixed.item() == pytest.approx(expected, abs=1e-6)
    assert distillation_loss(S, None, labels, ce_weight=1.0).item() == pytest.approx(ln(2), abs=1e-6)
    with pytest.raises(ValueError):
        distillation_loss(S, T, labels, kind="mse")


def test_gradients_pull_the_student_towards_the_teacher():
    student = S.clone().requires_grad_()
    forward_kl(student, T).backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 1]  # raise token 0, as the teacher prefers
