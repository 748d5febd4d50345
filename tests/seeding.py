"""One seeding fixture for the export suite and the op sweep (each conftest imports it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def seeded_torch() -> Iterator[None]:
    """Same random inputs on every run and every xdist worker; the generator is restored after.

    torch is imported here, not at module level: the conftests import this module, and an xdist
    controller, which loads conftests but runs no test, should not spend seconds importing torch before it
    starts its workers.
    """
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)
