"""Pre-training losses: finiteness, masking of unmentioned labels, ProtoCL semantics and determinism,
and that each term can be optimised on a tiny model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from training.model import MeDSLIPOutput, create_model
from training.tasks.losses import (
    LOSS_TERMS,
    LossConfig,
    existence_loss,
    icl_loss,
    medslip_losses,
    protocl_loss,
)

T = 16


def _batch(batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random report labels with the derivation rules of the contract (pathology/anatomy from matrix)."""
    generator = torch.Generator().manual_seed(seed)
    draw = torch.rand(batch_size, 51, 75, generator=generator)
    matrix = torch.full((batch_size, 51, 75), -1, dtype=torch.int8)
    matrix[draw < 0.012] = 0
    matrix[draw < 0.005] = 1
    pathology = torch.where((matrix == 1).any(1), 1, torch.where((matrix == 0).any(1), 0, -1))
    anatomy = torch.where((matrix == 1).any(2), 1, torch.where((matrix == 0).any(2), 0, -1))
    return {
        "matrix": matrix,
        "pathology_labels": pathology.to(torch.int8),
        "anatomy_labels": anatomy.to(torch.int8),
    }


def _random_output(batch_size: int, seed: int = 0) -> MeDSLIPOutput:
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(batch_size, 75, 4, 4, generator=g)
    return MeDSLIPOutput(
        pathology_logits=torch.randn(batch_size, 75, 2, generator=g),
        anatomy_logits=torch.randn(batch_size, 51, 2, generator=g),
        pathology_features=torch.randn(batch_size, 75, 8, generator=g),
        anatomy_features=torch.randn(batch_size, 51, 8, generator=g),
        pathology_maps=maps,
        anatomy_maps=torch.rand(batch_size, 51, 4, 4, generator=g),
        pathology_layer_maps=[maps],
        anatomy_layer_maps=[],
        pathology_text_proj=torch.randn(batch_size, 75, T, generator=g),
        anatomy_text_proj=torch.randn(batch_size, 51, T, generator=g),
    )


def _books(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(75, T, generator=g), torch.randn(51, T, generator=g)


def test_all_terms_finite_and_total_is_weighted_sum() -> None:
    batch, output, (book_p, book_a) = _batch(3), _random_output(3), _books()
    config = LossConfig(icl_weight=0.5, protocl_anatomy_weight=2.0)
    losses = medslip_losses(
        output, batch, book_p, book_a, config=config, generator=torch.Generator().manual_seed(0)
    )
    assert set(losses) == {*LOSS_TERMS, "total"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    weights = {name: getattr(config, f"{name}_weight") for name in LOSS_TERMS}
    expected = sum(weights[name] * losses[name] for name in LOSS_TERMS)
    assert torch.allclose(losses["total"], expected)


def test_existence_loss_is_mean_cross_entropy_over_mentioned() -> None:
    logits = torch.randn(2, 4, 2)
    labels = torch.tensor([[1, 0, -1, -1], [-1, 1, 0, -1]])
    mentioned = labels >= 0
    expected = F.cross_entropy(logits[mentioned], labels[mentioned])
    assert torch.allclose(existence_loss(logits, labels), expected)


def test_batch_balanced_existence_weighs_present_and_absent_halves_per_query() -> None:
    logits = torch.randn(4, 3, 2)
    # query 0: one present, three absent; query 1: only absent; query 2: never mentioned
    labels = torch.tensor([[1, 0, -1], [0, 0, -1], [0, -1, -1], [0, 0, -1]])
    ce = F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten(), reduction="none").view(4, 3)
    query0 = 0.5 * ce[0, 0] + 0.5 * ce[1:, 0].mean()
    query1 = ce[[0, 1, 3], 1].mean()
    expected = (query0 + query1) / 2
    assert torch.allclose(existence_loss(logits, labels, "batch"), expected)
    # the lone positive weighs as much as all three negatives together, unlike the plain mean
    assert not torch.allclose(existence_loss(logits, labels, "none"), expected)


def test_balanced_existence_is_selected_by_the_config_for_the_pathology_head_only() -> None:
    batch, output, (book_p, book_a) = _batch(3, seed=2), _random_output(3, seed=2), _books()
    balanced = medslip_losses(output, batch, book_p, book_a,
                              config=LossConfig(existence_pathology_balance="batch"))
    plain = medslip_losses(output, batch, book_p, book_a)
    expected = existence_loss(output.pathology_logits, batch["pathology_labels"], "batch")
    assert torch.allclose(balanced["existence_pathology"], expected)
    assert torch.allclose(balanced["existence_anatomy"], plain["existence_anatomy"])
    with pytest.raises(ValueError, match="existence_pathology_balance"):
        LossConfig(existence_pathology_balance="focal")  # type: ignore[arg-type]


def test_unmentioned_entries_do_not_change_existence_or_icl() -> None:
    batch, output = _batch(2, seed=1), _random_output(2, seed=1)
    base_p = existence_loss(output.pathology_logits, batch["pathology_labels"])
    unmentioned = (batch["pathology_labels"] == -1).unsqueeze(-1)  # (B, 75, 1)
    noisy_logits = torch.where(unmentioned, output.pathology_logits * 10 + 3, output.pathology_logits)
    assert unmentioned.any()
    assert torch.allclose(existence_loss(noisy_logits, batch["pathology_labels"]), base_p)

    logits = torch.einsum("bad,bpd->bap", output.anatomy_features, output.pathology_features)
    mask = batch["matrix"] >= 0
    expected = F.binary_cross_entropy_with_logits(logits[mask], batch["matrix"][mask].float())
    got = icl_loss(output.pathology_features, output.anatomy_features, batch["matrix"])
    assert torch.allclose(got, expected)


def test_protocl_ignores_unmentioned_versus_absent() -> None:
    """Negatives are 'not co-occurring': turning -1 (unmentioned) into 0 (absent) changes nothing."""
    batch, output, (_, book_a) = _batch(2, seed=2), _random_output(2, seed=2), _books()
    changed = batch["matrix"].clone()
    changed[changed == -1] = 0
    assert (changed != batch["matrix"]).any()

    def run(matrix: torch.Tensor) -> torch.Tensor:
        return protocl_loss(
            output.pathology_text_proj,
            batch["pathology_labels"],
            matrix.transpose(1, 2),
            book_a,
            generator=torch.Generator().manual_seed(5),
        )

    assert torch.equal(run(batch["matrix"]), run(changed))


def test_protocl_deterministic_under_seeded_generator() -> None:
    batch, output, (book_p, book_a) = _batch(2, seed=3), _random_output(2, seed=3), _books()

    def run(seed: int) -> torch.Tensor:
        return medslip_losses(output, batch, book_p, book_a, generator=torch.Generator().manual_seed(seed))[
            "protocl_pathology"
        ]

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_protocl_rewards_pointing_at_the_prototype() -> None:
    """Hand-made case: one present pathology at anatomies 0 and 1; prototype = mean of their embeddings."""
    book_a = torch.randn(51, T, generator=torch.Generator().manual_seed(0))
    cooccurrence = torch.zeros(1, 2, 51, dtype=torch.long)
    cooccurrence[0, 0, [0, 1]] = 1
    labels = torch.tensor([[1, 0]])  # query 1 absent: ignored
    prototype = (book_a[0] + book_a[1]) / 2
    aligned = torch.stack([prototype, torch.randn(T)]).unsqueeze(0)  # (1, 2, T)
    opposed = torch.stack([-prototype, torch.randn(T)]).unsqueeze(0)
    good = protocl_loss(aligned, labels, cooccurrence, book_a, similarity="cosine", temperature=0.05)
    bad = protocl_loss(opposed, labels, cooccurrence, book_a, similarity="cosine", temperature=0.05)
    assert good < 0.5 < bad
    none_present = protocl_loss(aligned, torch.tensor([[0, 0]]), cooccurrence, book_a)
    assert none_present == 0


def test_protocl_handles_too_few_negatives() -> None:
    """With only 2 non-co-occurring entities and 7 requested negatives, invalid picks are masked out."""
    book = torch.randn(4, T)
    cooccurrence = torch.tensor([[[1, 1, 0, 0]]])
    proj = torch.randn(1, 1, T)
    loss = protocl_loss(proj, torch.tensor([[1]]), cooccurrence, book, num_negatives=7)
    prototype = book[:2].mean(0)
    logits = torch.stack([proj[0, 0] @ prototype, proj[0, 0] @ book[2], proj[0, 0] @ book[3]])
    assert torch.allclose(loss, F.cross_entropy(logits.unsqueeze(0), torch.tensor([0])), atol=1e-5)


def test_losses_reject_custom_query_sets() -> None:
    batch, output, (book_p, book_a) = _batch(1), _random_output(1), _books()
    output = output._replace(pathology_logits=output.pathology_logits[:, :5])
    with pytest.raises(ValueError, match="built-in books"):
        medslip_losses(output, batch, book_p, book_a)


def test_loss_config_validation() -> None:
    with pytest.raises(ValueError, match="temperature"):
        LossConfig(temperature=0.0)
    with pytest.raises(ValueError, match="protocl_similarity"):
        LossConfig(protocl_similarity="l2")  # type: ignore[arg-type]


@pytest.mark.parametrize("term", LOSS_TERMS)
def test_each_term_decreases_under_optimisation(term: str) -> None:
    torch.manual_seed(0)
    book_p, book_a = _books(1)
    model = create_model(
        "medslip_resnet18",
        image_size=64,
        d_model=32,
        ffn_dim=64,
        n_layers=1,
        text_dim=T,
        dropout=0.0,
        pathology_book=book_p,
        anatomy_book=book_a,
    ).train()
    weights: dict[str, Any] = {f"{name}_weight": 1.0 if name == term else 0.0 for name in LOSS_TERMS}
    config = LossConfig(**weights)
    batch, images = _batch(2, seed=4), torch.randn(2, 3, 64, 64)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = []
    for _ in range(8):
        generator = torch.Generator().manual_seed(0)
        losses = medslip_losses(model(images), batch, book_p, book_a, config=config, generator=generator)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append(losses[term].item())
    assert history[-1] < history[0] * 0.9, history
