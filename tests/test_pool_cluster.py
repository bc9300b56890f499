"""The judge pool on a simulated multi-node cluster (`ray.cluster_utils.Cluster`): a custom resource stands in
for judge GPUs; replicas spread over nodes, another process connects by name, and removing a node in the
middle of a batch loses no request."""

import json
import subprocess
import sys
import threading
import time

import pytest

from mr3_reward.backends.base import ChatPrompt, GenerationRequest
from mr3_reward.backends.ray_pool import JudgePool
from mr3_reward.backends.testing import echo_verdict
from mr3_reward.types import Sampling

pytestmark = pytest.mark.ray
SCHEMA = "'enum': ['true', 'false']"


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    # Two "judge nodes" with two judge GPUs each; the head (the trainer's node here) has none.
    workers = [c.add_node(num_cpus=2, resources={"judge_gpu": 2}) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="mr3", log_to_driver=False)
    yield c, workers
    ray.shutdown()
    c.shutdown()


def reqs(n, tag):
    return [GenerationRequest(ChatPrompt(f"system {SCHEMA}", f"{tag} {i}"), Sampling(max_tokens=64)) for i in range(n)]


def test_replicas_spread_connect_by_name_and_survive_a_removed_node(cluster):
    c, workers = cluster
    pool = JudgePool.start("latency", engine="mr3_reward.backends.testing:LatencyBackend", name="multi",
                           replicas=2, gpus_per_replica=0, cpus_per_replica=1, resources={"judge_gpu": 1},
                           backend_options={"per_token_s": 0.01, "tokens": 25}, health_interval_s=0.5,
                           timeout_s=120, chunk_size=4)
    try:
        replicas = pool.status()["replicas"]
        nodes = {r["node"] for r in replicas}
        worker_ids = {w.node_id for w in workers}
        # Each replica on its own judge node, although one node could hold both: the pool spreads them.
        assert len(nodes) == 2 and nodes <= worker_ids, (nodes, worker_ids)

        # Another process of the cluster (a trainer rank, a labeling job) connects by name.
        script = (
            "import json, ray\n"
            "from mr3_reward.backends.ray_pool import JudgePool\n"
            "from mr3_reward.backends.base import ChatPrompt, GenerationRequest\n"
            "from mr3_reward.types import Sampling\n"
            f"ray.init(address={c.address!r}, log_to_driver=False)\n"
            "pool = JudgePool.connect('multi')\n"
            f"reqs = [GenerationRequest(ChatPrompt(\"system {SCHEMA}\", f'other {{i}}'), Sampling(max_tokens=64)) for i in range(12)]\n"
            "print(json.dumps([g.text for g in pool.generate(reqs)]))\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        texts = json.loads(done.stdout.strip().splitlines()[-1])
        assert texts == [echo_verdict(r.prompt, r.sampling) for r in reqs(12, "other")]

        # Remove the node that holds replica 0 while a batch is in flight: nothing is lost.
        victim = next(w for w in workers if w.node_id == replicas[0]["node"])
        batch = reqs(120, "node-loss")
        client = JudgePool.connect("multi", chunk_size=4, max_inflight=8)  # ~8 rounds of 0.25 s engine calls
        out = {}
        worker = threading.Thread(target=lambda: out.setdefault("gens", client.generate(batch)))
        worker.start()
        time.sleep(0.6)
        c.remove_node(victim)
        worker.join(180)
        assert not worker.is_alive()
        assert [g.text for g in out["gens"]] == [echo_verdict(r.prompt, r.sampling) for r in batch]
        assert client.stats["deaths"] >= 1 and client.stats["resent"] >= 1, client.stats
    finally:
        pool.shutdown()
