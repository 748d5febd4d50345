"""One seeding fixture for the export suite and the op sweep (each conftest imports it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded_torch() -> Iterator[None]:
    """Same random inputs on every run and every xdist worker; the generator is restored after."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)
