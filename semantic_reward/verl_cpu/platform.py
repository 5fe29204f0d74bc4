"""verl's platform interface for a machine without accelerators (device "cpu", collectives over gloo).

verl has no CPU platform; ``patches.register_names`` registers this class as ``cpu``
and ``VERL_PLATFORM=cpu`` selects it (it is never auto-detected). The gaps it cannot
fill through this interface are patched in ``semantic_reward.verl_cpu.patches``.
Shown to work: verl's SFT trainer (``torchrun -m verl.trainer.sft_trainer``) with
``trainer.device=cpu``, ``engine.strategy=fsdp2`` and
``+model.override_config.attn_implementation=sdpa``, and GRPO through ``main_ppo``
with the ``hf`` rollout (``recipes/profile/cpu-tiny.yaml``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase

__all__ = ["PlatformCPU"]


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
