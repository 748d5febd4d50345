"""Op-sweep fixtures: the same seeding as the export suite."""

from tests.seeding import seeded_torch

__all__ = ["seeded_torch"]
