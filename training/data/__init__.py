"""Training data: the JSONL manifest, source readers, datasets and augmentation."""
