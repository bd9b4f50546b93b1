"""Tests of training.reports (rule-based report parser)."""
