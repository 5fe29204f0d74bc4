"""The start-up probe on a local single-node Ray: our reward manager is found registered in verl on every
alive node, and a node where verl loads no plugin fails loudly with its id (issue 12, item 2)."""

import pytest

from semantic_reward.cluster import ClusterError, _check_shape, check_nodes, cluster_shape, main, node_gpus, probe_node

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_small():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    if started:
        ray.shutdown()


def test_every_node_has_the_semantic_manager_registered(ray_small):
    reports = check_nodes("semantic", timeout_s=240)
    alive = [n["NodeID"] for n in ray_small.nodes() if n["Alive"]]
    assert [r.node_id for r in reports] == alive and len(alive) == 1
    assert reports[0].ok and reports[0].detail == (
        "'semantic' -> semantic_reward.verl_adapter.manager.SemanticRewardManager")


def test_a_missing_manager_fails_with_the_node_id(ray_small):
    node = ray_small.get_runtime_context().get_node_id()
    with pytest.raises(ClusterError, match=f"missing on 1 of 1 node\\(s\\): node {node} \\(.*\\): reward manager "
                                           "'no_such_manager' is not registered"):
        check_nodes("no_such_manager", timeout_s=240)


def test_a_node_whose_verl_loads_no_plugin_says_why(ray_small):
    """A fresh worker with verl's plugin loading switched off stands for a node without the package."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray_small.get_runtime_context().get_node_id()
    probe = ray_small.remote(num_cpus=0)(probe_node).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        runtime_env={"env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none"}})
    report = ray_small.get(probe.remote("semantic"), timeout=240)
    assert report["node_id"] == node and report["ok"] is False
    assert "reward manager 'semantic' is not registered" in report["detail"]
    assert "VERL_USE_EXTERNAL_PLUGINS='none'" in report["detail"]


def test_gpu_counts_come_from_ray(ray_small):
    gpus = node_gpus()
    assert list(gpus.values()) == [ray_small.cluster_resources().get("GPU", 0.0)]
    with pytest.raises(ClusterError, match="Ray detects 0 node\\(s\\) with at least 8 GPUs"):
        _check_shape(gpus, 1, 8)
    assert main(["check", "--nnodes", "2", "--gpus-per-node", "8", "--manager", "semantic"]) == 1


def test_cluster_shape_needs_equal_gpu_nodes():
    assert cluster_shape({"a": 8.0, "b": 8.0, "head": 0.0}) == (2, 8)
    with pytest.raises(ClusterError, match="different GPU counts \\[4, 8\\]"):
        cluster_shape({"a": 8.0, "b": 4.0})
    with pytest.raises(ClusterError, match="no GPU on any of its 1 alive node"):
        cluster_shape({"a": 0.0})
