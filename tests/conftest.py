from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_topologies"


@pytest.fixture
def samples() -> Path:
    return SAMPLES
