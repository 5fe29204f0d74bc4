"""Every change this package makes to torch or verl at run time, in one place.

verl 0.9.1 has no CPU platform and no CPU rollout. Filling the gaps means writing
into verl's registries and wrapping two functions; each of these depends on verl
internals, so they are checked against the verl version they were written for and
refused, with a clear error, on any other version.

- ``register_names``: the ``cpu`` platform (verl's public ``PlatformRegistry``) and
  the ``hf`` rollout (verl's rollout-class table and ``RolloutReplicaRegistry``); the
  rollout module is imported only when a config names ``rollout.name=hf``.
  Registering a name changes nothing for a run that does not use it.
- ``apply_cpu_patches`` (only with ``VERL_PLATFORM=cpu``): the process-group backend
  verl builds ("cpu:gloo,cpu:gloo", which torch rejects) becomes "gloo"; the
  training-engine registry, which lists engines for cuda/npu only, gets the cuda
  entries for cpu too; FSDP2's CPU offload of forward-only models stays unpinned
  (pinning needs an accelerator); the V1 trainer's replay buffer polls for finished
  rollouts every ``CPU_POLL_SECONDS`` instead of 2 s (verl's constructor default, which no
  config key reaches): a GPU step takes a minute, a tiny CPU step a few seconds, and the 2-s
  sleeps rounded each cpu-tiny generation (~3.5 s) up to exactly 4.0 s (``timing_s/gen``).
"""

from __future__ import annotations

import inspect
import logging
import os
from types import ModuleType

__all__ = ["VERL_VERSION", "VerlVersionError", "cpu_selected", "check_verl_version", "register_names",
           "apply_cpu_patches", "short_replay_buffer_poll", "HF_ROLLOUT_ADAPTER", "CPU_POLL_SECONDS"]

logger = logging.getLogger(__name__)

VERL_VERSION = "0.9.1"
HF_ROLLOUT_ADAPTER = "semantic_reward.verl_cpu.hf_rollout.HFServerAdapter"
_MARK = "_semantic_reward_cpu"
REPLAY_BUFFER_MODULE = "verl.trainer.ppo.v1.replay_buffer"
CPU_POLL_SECONDS = 0.1


class VerlVersionError(RuntimeError):
    """The installed verl is not the version these patches were written for."""


def cpu_selected() -> bool:
    """True when the user chose verl's CPU platform (``VERL_PLATFORM=cpu``); it is never auto-detected."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


def check_verl_version(installed: str | None = None) -> None:
    """Refuse to patch any verl but the one the patches were read against."""
    if installed is None:
        import verl

        installed = getattr(verl, "__version__", "unknown")
    if installed != VERL_VERSION:
        raise VerlVersionError(
            f"semantic_reward.verl_cpu patches verl internals written for verl {VERL_VERSION}, but verl {installed} "
            f"is installed. Install verl=={VERL_VERSION} for the CPU platform and the hf rollout, or unset "
            "VERL_PLATFORM=cpu and use a GPU rollout (vllm/sglang).")


def register_names() -> None:
    """Register the ``cpu`` platform and the ``hf`` rollout under their names (idempotent)."""
    check_verl_version()
    from verl.plugin.platform.platform_manager import PlatformRegistry
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from .platform import PlatformCPU

    if PlatformRegistry.get("cpu") is None:
        PlatformRegistry.register(platform="cpu")(PlatformCPU)

    def load_replica():
        from .hf_rollout import HFReplica

        return HFReplica

    _ROLLOUT_REGISTRY[("hf", "async")] = HF_ROLLOUT_ADAPTER
    RolloutReplicaRegistry.register("hf", load_replica)


def _patch_process_group_backend() -> None:
    import torch.distributed as dist

    original = dist.init_process_group
    if getattr(original, _MARK, False):
        return

    def init_process_group(*args, backend=None, **kwargs):
        if backend == "cpu:gloo,cpu:gloo":  # verl joins "<device>:<backend>" for cpu and the device
            backend = "gloo"
        return original(*args, backend=backend, **kwargs)

    setattr(init_process_group, _MARK, True)
    dist.init_process_group = init_process_group


def _patch_engine_registry() -> None:
    from verl.workers.engine.base import EngineRegistry

    for backends in EngineRegistry._engines.values():
        for registry in backends.values():
            if "cuda" in registry and "cpu" not in registry:
                registry["cpu"] = registry["cuda"]


def _patch_unpinned_offload() -> None:
    import verl.workers.engine.fsdp.transformer_impl as fsdp_impl
    from torch.distributed.fsdp import CPUOffloadPolicy

    if not hasattr(fsdp_impl, "CPUOffloadPolicy"):
        raise VerlVersionError("verl.workers.engine.fsdp.transformer_impl no longer imports CPUOffloadPolicy")
    if getattr(fsdp_impl.CPUOffloadPolicy, _MARK, False):
        return

    def unpinned_offload_policy(*args, pin_memory: bool = False, **kwargs):
        return CPUOffloadPolicy(*args, pin_memory=False, **kwargs)

    setattr(unpinned_offload_policy, _MARK, True)
    fsdp_impl.CPUOffloadPolicy = unpinned_offload_policy


def short_replay_buffer_poll(module: ModuleType) -> None:
    """Make ``poll_interval`` default to CPU_POLL_SECONDS in verl's V1 ReplayBuffer (an explicit value wins)."""
    buffer = getattr(module, "ReplayBuffer", None)
    init = getattr(buffer, "__init__", None)
    signature = inspect.signature(init) if init is not None else None
    if signature is None or "poll_interval" not in signature.parameters:
        raise VerlVersionError(f"{REPLAY_BUFFER_MODULE}.ReplayBuffer no longer takes poll_interval")
    if getattr(init, _MARK, False):
        return

    def __init__(self, *args, **kwargs):
        if "poll_interval" not in signature.bind_partial(self, *args, **kwargs).arguments:
            kwargs["poll_interval"] = CPU_POLL_SECONDS
        init(self, *args, **kwargs)

    setattr(__init__, _MARK, True)
    buffer.__init__ = __init__


def apply_cpu_patches() -> None:
    """The CPU gaps (see the module docstring); call only when the CPU platform is selected."""
    from ..import_patches import patch_on_import

    check_verl_version()
    _patch_process_group_backend()
    _patch_engine_registry()
    _patch_unpinned_offload()
    # the replay buffer is imported by the V1 trainer's process only: patched when (if) it is imported
    patch_on_import(REPLAY_BUFFER_MODULE, short_replay_buffer_poll, key="cpu_replay_buffer_poll")
    logger.debug("semantic_reward.verl_cpu: CPU patches applied to torch.distributed and verl %s", VERL_VERSION)
