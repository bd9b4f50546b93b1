"""Fixtures shared by every test folder."""

from tests.fixtures.shared_data import shared_data  # noqa: F401  (re-exported fixture)
