import os
from pathlib import Path

import pytest

# Nothing in the test suite may reach the network for models or datasets.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "mr3_reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official rubric packs and golden prompts, read in place from ../shared (never copied)."""
    if not (REFERENCE / "golden_prompts.jsonl").is_file():
        pytest.fail(f"reference data not found at {REFERENCE}: the repo must sit next to shared/")
    return REFERENCE


@pytest.fixture(scope="session")
def pack_dir(reference_dir: Path) -> Path:
    return reference_dir / "rubrics"
