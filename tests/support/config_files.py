"""Writing a configuration dataclass to a file, the inverse of `training.config_io.load_config`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from training.config_io import config_to_dict


def save_config(config: Any, path: str | Path) -> None:
    """Write a dataclass instance as YAML (.yaml, .yml) or JSON (any other suffix)."""
    path = Path(path)
    data = config_to_dict(config)
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
