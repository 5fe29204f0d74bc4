"""A CPU platform for verl 0.9.1, so verl's own trainers run on a machine without accelerators.

verl has no CPU platform. This module registers one (``VERL_PLATFORM=cpu`` selects it;
it is never auto-detected) and, only when it is selected, fills the gaps found on the
way: the process-group backend verl builds ("cpu:gloo,cpu:gloo", which torch rejects,
becomes "gloo"); the training-engine registry, which lists engines for cuda/npu only
(the cuda entries serve cpu too); and FSDP2's pinned CPU offload of forward-only models
(pinning needs an accelerator, so it stays unpinned). On GPU machines nothing changes.

It is loaded in every process through the ``verl.plugins`` entry point. Shown to work:
verl's SFT trainer (``torchrun -m verl.trainer.sft_trainer``) with ``trainer.device=cpu``,
``engine.strategy=fsdp2`` and ``+model.override_config.attn_implementation=sdpa``, and
GRPO through ``main_ppo`` with the ``hf`` rollout (``recipes/quickstart_cpu``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

__all__ = ["PlatformCPU", "cpu_selected"]


def cpu_selected() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


class _CPUDeviceModule:
    """``torch.cpu`` plus the memory and device queries verl makes on an accelerator module."""

    def __getattr__(self, name: str) -> Any:
        if hasattr(torch.cpu, name):
            return getattr(torch.cpu, name)
        if "memory" in name or name.endswith(("_reserved", "_allocated")):
            return lambda *args, **kwargs: 0
        if name in ("empty_cache", "reset_peak_memory_stats", "set_device", "ipc_collect", "manual_seed",
                    "manual_seed_all"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def is_available(self) -> bool:
        return True

    def get_device_name(self, *args: Any) -> str:
        return "CPU"

    def get_rng_state(self, *args: Any) -> torch.Tensor:
        return torch.get_rng_state()

    def set_rng_state(self, state: torch.Tensor, *args: Any) -> None:
        torch.set_rng_state(state)

    def mem_get_info(self, *args: Any) -> tuple[int, int]:
        import psutil

        vm = psutil.virtual_memory()
        return vm.available, vm.total


_DEVICE_MODULE = _CPUDeviceModule()


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    """Device "cpu", collectives over gloo; reports Ray's "GPU" resource because verl counts only that."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self):
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # never auto-detected: choose it with VERL_PLATFORM=cpu

    def current_device(self):
        return torch.device("cpu")  # verl passes this straight to .to()

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: int | None = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CPU_VISIBLE_DEVICES"

    def nvtx_range(self, msg: str):
        return contextlib.nullcontext()

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self):
        return None


def _patch_for_cpu() -> None:
    import torch.distributed as dist
    from verl.workers.engine.base import EngineRegistry

    original = dist.init_process_group
    if not getattr(original, "_semantic_reward_cpu", False):

        def init_process_group(*args, backend=None, **kwargs):
            if backend == "cpu:gloo,cpu:gloo":
                backend = "gloo"
            return original(*args, backend=backend, **kwargs)

        init_process_group._semantic_reward_cpu = True
        dist.init_process_group = init_process_group

    for backends in EngineRegistry._engines.values():
        for registry in backends.values():
            if "cuda" in registry and "cpu" not in registry:
                registry["cpu"] = registry["cuda"]

    # FSDP2 keeps forward-only models (the reference policy) in pinned CPU memory, and
    # pinning needs an accelerator: on the CPU platform the memory stays unpinned.
    try:
        import verl.workers.engine.fsdp.transformer_impl as fsdp_impl
        from torch.distributed.fsdp import CPUOffloadPolicy
    except ImportError:  # pragma: no cover - FSDP engine not importable
        return

    def unpinned_offload_policy(*args, pin_memory: bool = False, **kwargs):
        return CPUOffloadPolicy(*args, pin_memory=False, **kwargs)

    fsdp_impl.CPUOffloadPolicy = unpinned_offload_policy


if cpu_selected():
    _patch_for_cpu()
