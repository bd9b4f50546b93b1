"""Segmentation model on the shared trunk: output layout, skip connections, trunk freezing."""

from __future__ import annotations

import torch

from training.model import SEGMENTATION_STRUCTURES, SegmentationModel, create_model
from training.model.resnet import ResNetTrunk


def test_logits_are_full_resolution_in_contract_order() -> None:
    assert SEGMENTATION_STRUCTURES == ("right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle")
    model = SegmentationModel(ResNetTrunk("resnet18")).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5, 64, 64)


def test_resnet50_trunk_shared_with_medslip() -> None:
    medslip = create_model("medslip_resnet50", image_size=64)
    model = SegmentationModel(medslip.res_features).eval()
    assert model.trunk is medslip.res_features
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)


def test_frozen_trunk_gets_no_gradient_and_keeps_batchnorm_statistics() -> None:
    model = SegmentationModel(ResNetTrunk("resnet18"), freeze_trunk=True, decoder_channels=(32, 16, 16, 8))
    model.train()
    assert not model.trunk.training and model.head.training
    stem_norm = model.trunk[1]
    assert isinstance(stem_norm, torch.nn.BatchNorm2d) and stem_norm.running_mean is not None
    before = stem_norm.running_mean.clone()
    model(torch.randn(2, 3, 64, 64)).mean().backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    assert torch.equal(stem_norm.running_mean, before)


def test_unfrozen_trunk_is_trained() -> None:
    model = SegmentationModel(ResNetTrunk("resnet18"), decoder_channels=(32, 16, 16, 8)).train()
    model(torch.randn(2, 3, 64, 64)).mean().backward()
    assert model.trunk[0].weight.grad is not None


def test_fine_detail_reaches_output_through_skips() -> None:
    """A one-pixel change moves the logits near that pixel more than far away (stride-2 skip in use)."""
    torch.manual_seed(0)
    model = SegmentationModel(ResNetTrunk("resnet18"), decoder_channels=(32, 16, 16, 8)).eval()
    images = torch.randn(1, 3, 64, 64)
    changed = images.clone()
    changed[..., 10, 10] += 5.0
    with torch.no_grad():
        delta = (model(changed) - model(images)).abs().sum(dim=1)[0]  # (64, 64)
    assert delta[8:13, 8:13].mean() > 5 * delta[48:, 48:].mean()


def test_a_prior_head_is_frozen_stays_in_eval_mode_and_gives_its_own_logits() -> None:
    model = SegmentationModel(ResNetTrunk("resnet18"), freeze_trunk=True, decoder_channels=(32, 16, 16, 8))
    stages = model.trunk.forward_stages(torch.randn(2, 3, 64, 64))
    masks, prior = model.masks_and_prior(stages, (64, 64))
    assert prior is masks  # one head: its decoder runs once

    other = SegmentationModel(ResNetTrunk("resnet18"), decoder_channels=(16, 8, 8, 8)).head
    model.attach_prior_head(other.state_dict(), (16, 8, 8, 8))
    model.train()
    assert model.prior_head is not None and not model.prior_head.training and model.head.training
    assert not any(p.requires_grad for p in model.prior_head.parameters())
    masks, prior = model.masks_and_prior(stages, (64, 64))
    with torch.no_grad():
        assert torch.equal(prior, other.eval()(stages, (64, 64)))
    assert not torch.equal(prior, masks)
    assert model.prior_head.decoder_channels == (16, 8, 8, 8)
