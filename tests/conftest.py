from __future__ import annotations

import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them when pytest-xdist runs workers side by side.
torch.set_num_threads(max(1, int(os.environ.get("MEDST_TEST_THREADS", "2"))))


@pytest.fixture
def sample():
    """``sample("fmri_4d")`` -> Path of a real sample file; skips when its data package is absent."""
    from medst.data import sample_file

    def _get(name: str):
        try:
            return sample_file(name)
        except FileNotFoundError as e:
            pytest.skip(str(e))

    return _get
