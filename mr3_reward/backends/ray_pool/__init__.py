"""JudgePool: mR3 judges as Ray actors on their own GPUs, shared by every process that needs rewards.

    # once per cluster (or: mr3 serve --model MODEL --replicas 2 --gpus-per-replica 1)
    JudgePool.start("rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking", engine="vllm", replicas=2)
    # in every trainer rank, labeling job or custom loop of the same cluster
    reward = MR3Reward(pool="mr3-judges", mode="pointwise")

Three parts, all plain Ray (actors, placement groups, named detached actors; no RPC layer of our own):

* the **controller**, one named detached actor (``mr3-judges`` in namespace ``mr3``). It reserves one
  placement group per replica (one STRICT_PACK bundle, so a replica's GPUs sit on one node; each new group
  is steered to the node holding the fewest replicas, so replicas spread), starts the replicas, checks
  their health every few seconds, restarts a replica whose engine has been busy on one batch for longer
  than the request timeout, takes out a replica that keeps failing, and keeps the counters
  ``mr3 serve status`` prints. Removing it (``mr3 serve stop``) removes the replicas and their groups.
* **replicas**: one actor per engine (``vllm`` with ``tensor_parallel_size`` = its GPUs for real use;
  ``transformers`` or ``fake`` on CPU). A replica merges the batches that wait for its engine into one
  ``generate`` call, so chunks from several trainer ranks share an engine batch.
* the **client**, `JudgePool`, a `Backend`: `Judge` and `MR3Reward` use it like any engine. It splits a
  call into chunks and sends each to the replica with the least outstanding work among those below their
  in-flight budget (``max_inflight`` items per replica per client: a client never queues more than that,
  whatever the batch). A chunk whose replica dies, or does not answer within ``request_timeout_s``, is
  re-sent to another live replica; after ``max_attempts`` tries its items come back as engine errors
  (which `Judge` turns into typed failures). Every item therefore resolves within
  ``max_attempts * request_timeout_s`` of being sent.

Routing is per client: each process balances its own load and the replicas' merged batches absorb the
rest. Trainer GPUs are kept apart by resources: give judge nodes a custom resource (``ray start
--resources='{"mr3_judge": 8}'``) and start the pool with ``resources={"mr3_judge": 1}``, or start Ray on
the trainer nodes with ``--num-gpus=0``.

The modules follow those parts: `config` (`PoolConfig`, names, `PoolError`), `replica`, `controller`,
`client` (`JudgePool`) and `dispatch` (how one call is routed and re-sent). Importing this package does not
import Ray; the parts do when they run.
"""

from mr3_reward.backends.ray_pool.client import JudgePool
from mr3_reward.backends.ray_pool.config import DEFAULT_NAME, ENGINES, NAMESPACE, PoolConfig, PoolError
from mr3_reward.backends.ray_pool.controller import Controller
from mr3_reward.backends.ray_pool.replica import Replica

__all__ = ["DEFAULT_NAME", "ENGINES", "NAMESPACE", "Controller", "JudgePool", "PoolConfig", "PoolError", "Replica"]
