"""The training loop shared by pretraining and fine-tuning: config, optimizer/schedule, DDP, checkpoints."""

from training.trainer.config import ConfigError, TrainConfig, load_config
from training.trainer.loop import FINAL_CHECKPOINT, LAST_CHECKPOINT, Trainer, TrainTask

__all__ = [
    "FINAL_CHECKPOINT",
    "LAST_CHECKPOINT",
    "ConfigError",
    "TrainConfig",
    "TrainTask",
    "Trainer",
    "load_config",
]
