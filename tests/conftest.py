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


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance for one test module (8 logical CPUs on this 2-core machine), shut down after it."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=8, include_dashboard=False, namespace="mr3", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def make_pool(ray_local):
    """Start judge pools on CPU replicas (engine ``fake`` answering `echo_verdict` unless told otherwise);
    each is shut down after the test."""
    from mr3_reward.backends.ray_pool import JudgePool
    from mr3_reward.backends.testing import echo_verdict

    pools = []

    def make(name, model="fake", *, engine="fake", replicas=2, backend_options=None, **options):
        if engine == "fake" and backend_options is None:
            backend_options = {"respond": echo_verdict}
        options.setdefault("cpus_per_replica", 1)
        options.setdefault("health_interval_s", 0.5)
        pool = JudgePool.start(model, engine=engine, replicas=replicas, gpus_per_replica=0, name=name,
                               backend_options=backend_options, timeout_s=120, **options)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        try:
            pool.shutdown()
        except Exception:  # already stopped by the test
            pass
