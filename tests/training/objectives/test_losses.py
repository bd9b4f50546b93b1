"""ASG and MLIP loss terms on hand-made tensors with known answers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.objectives.losses import (
    image_report_alignment,
    keep_relevant,
    multi_positive_contrast,
    patch_relevance,
    region_sentence_alignment,
    sinkhorn,
    soft_label_contrast,
    soft_targets,
    tag_recognition,
    transport_scores,
)


def test_image_report_alignment_is_near_zero_on_a_confident_diagonal_and_2_log_b_when_uniform() -> None:
    assert float(image_report_alignment(50.0 * torch.eye(4))) < 1e-12
    assert float(image_report_alignment(torch.zeros(4, 4))) == pytest.approx(2 * math.log(4))


def test_image_report_alignment_sums_image_to_report_and_report_to_image() -> None:
    scores = torch.tensor([[2.0, 0.0, 1.0], [0.5, 1.0, 0.0], [3.0, 0.0, 0.2]])
    targets = torch.arange(3)
    expected = F.cross_entropy(scores, targets) + F.cross_entropy(scores.t(), targets)
    assert float(image_report_alignment(scores)) == pytest.approx(float(expected))


def test_soft_targets_known_values() -> None:
    same = torch.tensor([[1.0, 0.0, 1.0]] * 3)
    # No identity share: identical label rows give a target uniform over those rows.
    assert torch.allclose(soft_targets(same, identity_share=0.0), torch.full((3, 3), 1 / 3))
    # The release's 0.8: 0.8 + 0.2 on the diagonal, 0.2 elsewhere, rows summing to 1.4 (+ 3e-6).
    released = soft_targets(same)
    assert torch.allclose(released.diagonal(), torch.full((3,), 1.0 / 1.4), atol=1e-5)
    assert torch.allclose(released[0, 1:], torch.full((2,), 0.2 / 1.4), atol=1e-5)
    # Disjoint labels and a row without any tag: essentially the identity.
    disjoint = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert torch.allclose(soft_targets(disjoint), torch.eye(3), atol=1e-5)
    assert torch.allclose(soft_targets(disjoint).sum(dim=1), torch.ones(3))


def test_soft_label_contrast_is_zero_when_the_softmax_is_the_target_and_positive_otherwise() -> None:
    target = soft_targets(torch.tensor([[1.0, 0.0, 1.0]] * 3))  # identical labels: a symmetric target
    assert torch.allclose(target, target.t())
    assert float(soft_label_contrast(target.log(), target)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_label_contrast(torch.zeros(3, 3), target)) > 0.05


def _unit(rows: list[list[float]]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_region_sentence_alignment_perfect_pairs_padding_and_empty_batches() -> None:
    texts = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]).unsqueeze(0)  # (1, R=4, E=3)
    regions = texts.clone()
    valid = torch.tensor([[True, True, True, False]])  # slot 3 is padding
    perfect = region_sentence_alignment(regions, texts, valid, temperature=0.01)
    assert float(perfect) < 1e-6  # padding slot 3 would be confused with 0 and 1 if it took part
    garbage = regions.clone()
    garbage[0, 3] = torch.tensor([5.0, -3.0, 2.0])
    assert float(region_sentence_alignment(garbage, texts, valid, 0.01)) == pytest.approx(float(perfect))

    swapped = regions[:, [1, 0, 2, 3]]  # regions 0 and 1 each closest to the other's sentence
    assert float(region_sentence_alignment(swapped, texts, valid, 0.01)) > 50

    nothing = torch.zeros(1, 4, dtype=torch.bool)
    leaf = regions.clone().requires_grad_(True)
    empty = region_sentence_alignment(leaf, texts, nothing, 0.07)
    empty.backward()
    assert float(empty.detach()) == 0.0 and leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_region_sentence_alignment_can_drop_identical_texts_as_negatives() -> None:
    texts = _unit([[1, 0], [1, 0]]).unsqueeze(0)  # two regions named by the same sentence
    regions = texts.clone()
    valid = torch.ones(1, 2, dtype=torch.bool)
    same = torch.ones(1, 2, 2, dtype=torch.bool)
    released = region_sentence_alignment(regions, texts, valid, 0.07)
    assert float(released) == pytest.approx(2 * math.log(2))  # rows and columns: a coin toss each
    assert float(region_sentence_alignment(regions, texts, valid, 0.07, same_text=same)) == 0.0


def test_tag_recognition_is_bce_with_unmentioned_as_negative() -> None:
    tags = torch.tensor([[1.0, 0.0, 0.0]])
    assert float(tag_recognition(torch.tensor([[30.0, -30.0, -30.0]]), tags)) < 1e-12
    assert float(tag_recognition(torch.zeros(1, 3), tags)) == pytest.approx(math.log(2))


def test_sinkhorn_plan_has_the_requested_marginals_and_skips_padding() -> None:
    generator = torch.Generator().manual_seed(0)
    cost = torch.rand(2, 5, 4, generator=generator)
    rows = torch.full((2, 5), 0.2)
    columns = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])  # 2nd problem: 2 padded
    plan = sinkhorn(cost, rows, columns, epsilon=0.05, iterations=200)
    assert torch.allclose(plan.sum(dim=-2), columns, atol=1e-6)
    assert torch.allclose(plan.sum(dim=-1), rows, atol=1e-4)
    assert float(plan[1, :, 2:].abs().max()) == 0.0


def test_sinkhorn_moves_mass_along_cheap_pairs() -> None:
    cost = 1.0 - torch.eye(3)  # matching i to i is free, everything else costs 1
    mass = torch.full((3,), 1 / 3)
    plan = sinkhorn(cost, mass, mass, epsilon=0.02, iterations=100)
    assert torch.allclose(plan, torch.eye(3) / 3, atol=1e-6)


def test_transport_scores_rank_each_image_with_its_own_report() -> None:
    sentences = _unit([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]).reshape(2, 2, 4)
    patches = torch.cat([sentences, sentences], dim=1)  # (2, N=4, E): each image shows its 2 sentences
    valid = torch.ones(2, 2, dtype=torch.bool)
    scores = transport_scores(patches, sentences, valid, epsilon=0.02, iterations=100)  # (2, 2)
    assert torch.allclose(scores, torch.eye(2), atol=1e-4)  # own report: every patch on its sentence
    one_sentence = torch.tensor([[True, False], [True, False]])
    single = transport_scores(patches, sentences, one_sentence, epsilon=0.02, iterations=100)
    assert torch.allclose(single, torch.tensor([[0.5, 0.0], [0.0, 0.5]]), atol=1e-4)  # mean patch cosine


def test_multi_positive_contrast_known_values() -> None:
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    eye = torch.eye(3, dtype=torch.bool)
    targets = torch.arange(3)
    clip = (F.cross_entropy(scores, targets) + F.cross_entropy(scores.t(), targets)) / 2
    assert float(multi_positive_contrast(scores, eye)) == pytest.approx(float(clip))
    tied = torch.tensor([[50.0, 50.0], [50.0, 50.0]])  # two images with the same report
    assert float(multi_positive_contrast(tied, torch.ones(2, 2, dtype=torch.bool))) == pytest.approx(
        math.log(2)
    )
    assert float(multi_positive_contrast(tied, torch.eye(2, dtype=torch.bool))) == pytest.approx(math.log(2))


def test_semantic_integrity_masking_keeps_the_patches_the_report_describes() -> None:
    relevance = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.7, 0.0, 0.3, 0.8]])
    keep = keep_relevant(relevance, mask_ratio=0.5)
    assert keep.tolist() == [[False, True, True, False], [True, False, False, True]]
    assert keep_relevant(relevance, 0.0).all()
    assert keep_relevant(relevance, 0.99).sum(dim=1).tolist() == [1, 1]

    patches = _unit([[1, 0], [0, 1], [1, 1]]).unsqueeze(0)  # (1, 3, 2)
    sentences = _unit([[1, 0], [0, 1]]).unsqueeze(0)  # second sentence is padding
    best = patch_relevance(patches, sentences, torch.tensor([[True, False]]))
    assert torch.allclose(best, torch.tensor([[1.0, 0.0, 2**-0.5]]))
