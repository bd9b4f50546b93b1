"""MeDSLIP model: configuration, registry, dual-stream network, segmentation head, text encoder."""

from training.model.checkpoint import cpu_state, load_checkpoint, model_from_state, save_checkpoint
from training.model.config import ModelConfig
from training.model.medslip import MeDSLIP, MeDSLIPOutput
from training.model.registry import create_model, get_model_config, list_models, register_model
from training.model.resnet import ResNetTrunk
from training.model.segmentation import (
    SEGMENTATION_STRUCTURES,
    MeDSLIPWithSegmentation,
    SegmentationHead,
    SegmentationModel,
)
from training.model.text_encoder import TextEncoder, build_query_books, load_descriptions

__all__ = [
    "SEGMENTATION_STRUCTURES",
    "MeDSLIP",
    "MeDSLIPOutput",
    "MeDSLIPWithSegmentation",
    "ModelConfig",
    "ResNetTrunk",
    "SegmentationHead",
    "SegmentationModel",
    "TextEncoder",
    "build_query_books",
    "cpu_state",
    "create_model",
    "get_model_config",
    "list_models",
    "load_checkpoint",
    "load_descriptions",
    "model_from_state",
    "register_model",
    "save_checkpoint",
]
