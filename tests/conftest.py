from pathlib import Path

import pytest

# `../shared` beside the repository (the developers' machines and CI have it).
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the project's shared reference folder) is not present")
    return SHARED
