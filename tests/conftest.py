from pathlib import Path

import pytest
from hypothesis import settings

# No per-example time limit: speed is measured in benchmarks, and on a loaded
# machine (CI's two cores) a slow example is no failure.
settings.register_profile("qnet", deadline=None)
settings.load_profile("qnet")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_topologies"


@pytest.fixture
def samples() -> Path:
    return SAMPLES
