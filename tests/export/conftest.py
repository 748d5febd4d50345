"""Export-suite fixtures: deterministic randomness for every test."""

from tests.seeding import seeded_torch

__all__ = ["seeded_torch"]
