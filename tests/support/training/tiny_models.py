"""Tiny random MeDSLIP / segmentation checkpoints for export and evaluation tests (built in code)."""

from pathlib import Path

import torch

from training.model import MeDSLIP, SegmentationModel, create_model, save_checkpoint
from training.tasks.finetune_seg import SegmentationTaskConfig, save_segmentation_checkpoint

TEXT_DIM = 16
IMAGE_SIZE = 64


def tiny_model(seed: int = 0) -> MeDSLIP:
    """resnet18 trunk, 64 px, one decoder layer, 16-d queries; books filled with unit vectors."""
    torch.manual_seed(seed)
    model = create_model("medslip_resnet18", image_size=IMAGE_SIZE, n_layers=1, d_model=32, n_heads=4,
                         ffn_dim=64, text_dim=TEXT_DIM)
    books = [torch.nn.functional.normalize(torch.randn(n, TEXT_DIM), dim=-1) for n in (75, 51)]
    model.set_query_books(*books)
    return model.eval()


def write_tiny_checkpoints(
    folder: Path, seg_image_size: int = IMAGE_SIZE, *, prior_head: bool = False
) -> tuple[Path, Path]:
    """(MeDSLIP checkpoint, segmentation checkpoint sharing its frozen trunk, recorded as trained at
    `seg_image_size`; with `prior_head`, it also carries a prior head of other widths and weights)."""
    model = tiny_model()
    checkpoint = folder / "tiny.pt"
    save_checkpoint(checkpoint, model)
    task = SegmentationTaskConfig(decoder_channels=(16, 8, 8, 8))
    segmentation = SegmentationModel(model.res_features, decoder_channels=task.decoder_channels,
                                     freeze_trunk=True)
    if prior_head:
        prior = SegmentationModel(model.res_features, decoder_channels=(8, 8, 8, 8)).head
        segmentation.attach_prior_head(prior.state_dict(), (8, 8, 8, 8))
    seg_checkpoint = folder / "tiny_seg.pt"
    save_segmentation_checkpoint(seg_checkpoint, model, segmentation.eval(), task, seg_image_size)
    return checkpoint, seg_checkpoint
