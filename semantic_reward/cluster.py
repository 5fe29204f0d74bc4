"""What a Ray cluster offers before verl starts on it: GPUs per node (Ray's own detection) and our plugin on every node.

verl imports the ``verl.plugins`` entry points in each process and logs a plugin that fails to
import only at DEBUG level, so a node without the package (or with a broken install) just lacks
``reward.reward_manager.name=semantic`` and fails deep inside a reward worker. This module runs one
task pinned to every alive node that imports ``verl`` the way verl's workers do and looks the
manager up in verl's registry, failing with the node's id and host if it is not there.

    python -m semantic_reward.cluster gpus  [--address ADDR]
    python -m semantic_reward.cluster check [--address ADDR] --manager semantic --nnodes 2 --gpus-per-node 8

Inside a Ray Job (``ray job submit``) no address is needed: Ray sets it for the entrypoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["ClusterError", "NodeReport", "node_gpus", "cluster_shape", "probe_node", "check_nodes", "main"]

log = logging.getLogger(__name__)

PLUGIN_ENTRY_POINT = "semantic_reward"
"""Our entry point's name in the ``verl.plugins`` group (pyproject.toml)."""


class ClusterError(RuntimeError):
    """The cluster cannot run the command as composed."""


@dataclass(frozen=True)
class NodeReport:
    """What one node's probe found."""

    node_id: str
    host: str
    ok: bool
    detail: str


def _connect(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise ClusterError(f"no Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {exc}") from exc


def node_gpus(address: str | None = None) -> dict[str, float]:
    """Alive node id -> GPUs Ray detected on it.

    ``address``: a job server ``http(s)://HEAD:8265`` (read through Ray's state API), a cluster
    address or "auto" (``ray.nodes()``), or None: $RAY_ADDRESS, else a fresh local Ray instance.
    """
    if address and address.startswith(("http://", "https://")):
        from ray.util.state import list_nodes

        try:
            nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")])
        except Exception as exc:  # the state API raises its own connection errors
            raise ClusterError(f"no Ray job server at {address}: {exc}") from exc
        return {n.node_id: float((n.resources_total or {}).get("GPU", 0.0)) for n in nodes}
    import ray

    _connect(address)
    return {n["NodeID"]: float(n.get("Resources", {}).get("GPU", 0.0)) for n in ray.nodes() if n.get("Alive")}


def cluster_shape(gpus: dict[str, float]) -> tuple[int, int]:
    """(nnodes, GPUs per node) of the nodes that have GPUs; verl's pools need the same count on each."""
    counts = sorted(int(g) for g in gpus.values() if g >= 1)
    if not counts:
        raise ClusterError(f"Ray detects no GPU on any of its {len(gpus)} alive node(s)")
    if counts[0] != counts[-1]:
        raise ClusterError(f"the nodes have different GPU counts {counts}: set GPUS_PER_NODE (and NNODES) "
                           "to the shape verl should use")
    return len(counts), counts[0]


def probe_node(manager: str) -> dict[str, Any]:
    """Run ON a node: import verl (which loads the plugins) and look ``manager`` up in verl's registry."""
    import ray

    report = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}
    try:
        import verl  # noqa: F401  (loads every verl.plugins entry point, as each verl worker does)
        from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
    except Exception as exc:  # a node without verl is as broken as one without the plugin
        return {**report, "ok": False, "detail": f"cannot import verl: {exc!r}"}
    if manager in REWARD_MANAGER:
        cls = REWARD_MANAGER[manager]
        return {**report, "ok": True, "detail": f"'{manager}' -> {cls.__module__}.{cls.__qualname__}"}
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="verl.plugins") if ep.name == PLUGIN_ENTRY_POINT]
    policy = os.environ.get("VERL_USE_EXTERNAL_PLUGINS", "auto")
    if not eps:
        why = (f"no '{PLUGIN_ENTRY_POINT}' entry point in group verl.plugins: the semantic-reward package is not "
               f"installed in this node's Python ({sys.executable})")
    else:
        try:
            eps[0].load()
            why = ("verl did not load the entry point (it loads and registers the manager when imported by hand)"
                   if manager in REWARD_MANAGER else f"the entry point loads but does not register '{manager}'")
        except Exception as exc:
            why = f"the entry point {eps[0].value} fails to import: {exc!r}"
    if policy.strip().lower() not in ("auto", ""):
        why += f"; VERL_USE_EXTERNAL_PLUGINS={policy!r} limits which plugins verl loads"
    return {**report, "ok": False,
            "detail": f"reward manager '{manager}' is not registered ({sorted(REWARD_MANAGER)}): {why}"}


def check_nodes(manager: str = "semantic", address: str | None = None, timeout_s: float = 300.0) -> list[NodeReport]:
    """Probe every alive node with a task pinned to it; raise ``ClusterError`` naming each node that fails."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ray import cloudpickle

    _connect(address)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    # by value: the probe must run on a node where this very package is missing, to say so
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_node)
    refs = {node: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False))
            .remote(manager) for node in nodes}
    ready, pending = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    reports = []
    for node, ref in refs.items():
        if ref in ready:
            try:
                reports.append(NodeReport(**ray.get(ref)))
            except Exception as exc:  # the probe itself could not run there
                reports.append(NodeReport(node, "?", False, f"the probe failed: {exc}"))
        else:
            reports.append(NodeReport(node, "?", False, f"the probe did not finish within {timeout_s:.0f} s"))
    bad = [r for r in reports if not r.ok]
    if bad:
        raise ClusterError("our verl plugin is missing on {} of {} node(s): {}".format(
            len(bad), len(reports), "; ".join(f"node {r.node_id} ({r.host}): {r.detail}" for r in bad)))
    return reports


def _check_shape(gpus: dict[str, float], nnodes: int, per_node: int) -> None:
    enough = [node for node, g in gpus.items() if g >= per_node]
    if len(enough) < nnodes:
        listed = ", ".join(f"{node[:12]}: {g:g}" for node, g in gpus.items())
        raise ClusterError(f"the command asks for trainer.nnodes {nnodes} x trainer.n_gpus_per_node {per_node} GPUs "
                           f"but Ray detects {len(enough)} node(s) with at least {per_node} GPUs ({listed})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semantic_reward.cluster", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["gpus", "check"])
    ap.add_argument("--address", default=None, help="Ray (GCS) address; default: the running cluster ('auto')")
    ap.add_argument("--manager", default=None, help="the reward manager the recipe selects (none: no plugin probe)")
    ap.add_argument("--nnodes", type=int, default=None, help="check that Ray has this many GPU nodes ...")
    ap.add_argument("--gpus-per-node", type=int, default=None, help="... with at least this many GPUs each")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        gpus = node_gpus(args.address)
        if args.what == "gpus":
            nnodes, per_node = cluster_shape(gpus)
            print(f"{nnodes} {per_node}")
            return 0
        if args.nnodes is not None and args.gpus_per_node is not None:
            _check_shape(gpus, args.nnodes, args.gpus_per_node)
        if args.manager:
            for report in check_nodes(args.manager, args.address):
                log.info("node %s (%s): %s", report.node_id, report.host, report.detail)
        log.info("cluster ok: %d alive node(s), GPUs %s", len(gpus), sorted(gpus.values()))
    except ClusterError as exc:
        print(f"FAIL  {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
