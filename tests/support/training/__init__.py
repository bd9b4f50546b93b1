"""Helpers of the training tests: tiny MeDSLIP models and checkpoints, a tiny BERT, dataset trees."""
