"""A HuggingFace-transformers rollout for verl, registered as ``rollout.name=hf``.

verl 0.9.1 ships rollouts for vLLM, SGLang and TensorRT-LLM only, all GPU-bound. This
one lets the real GRPO loop run on a CPU (with the CPU platform): a Ray actor per
replica generates token-in/token-out with ``transformers`` and returns per-token
log-probs of the processed (temperature / top-p) distribution, as vLLM does; sleep,
wake-up and cache calls are no-ops; after each update the actor's full state dict is
copied into the server's model. It is slow and meant for small models and tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

__all__ = ["HFRolloutServer", "HFReplica", "HFServerAdapter", "server_name"]

logger = logging.getLogger(__name__)


def server_name(replica_rank: int) -> str:
    return f"semantic_reward_hf_rollout_server_{replica_rank}"


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a dict/DictConfig or of a dataclass config."""
    return obj.get(key, default) if hasattr(obj, "get") else getattr(obj, key, default)


class HFRolloutServer:
    """Generation server (a Ray actor): one transformers model, requests served one at a time."""

    def __init__(self, model_path: str, prompt_length: int, response_length: int, dtype: str = "float32",
                 num_threads: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if num_threads:
            torch.set_num_threads(num_threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).eval()
        self.prompt_length = prompt_length
        self.response_length = response_length
        self.global_steps = 0
        self._lock = asyncio.Lock()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.eos_ids.discard(None)

    def _generate(self, prompt_ids: list[int], params: dict[str, Any]) -> TokenOutput:
        temperature = float(params.pop("temperature", 1.0))
        top_p = float(params.pop("top_p", 1.0))
        top_k = int(params.pop("top_k", -1))
        max_tokens = params.pop("max_tokens", None) or params.pop("max_new_tokens", None)
        if max_tokens is None:
            max_tokens = min(self.response_length, self.prompt_length + self.response_length - len(prompt_ids))
        max_tokens = max(1, int(max_tokens))
        stop_ids = set(params.pop("stop_token_ids", None) or []) | self.eos_ids
        sample = temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                do_sample=sample, temperature=temperature if sample else None, top_p=top_p if sample else None,
                top_k=top_k if sample and top_k > 0 else None, max_new_tokens=max_tokens,
                eos_token_id=sorted(stop_ids), pad_token_id=self.tokenizer.pad_token_id,
                output_scores=True, return_dict_in_generate=True,
            )
        tokens = out.sequences[0, len(prompt_ids):].tolist()
        log_probs = [float(torch.log_softmax(score[0].float(), dim=-1)[tok]) for score, tok in zip(out.scores, tokens)]
        log_probs = [lp if lp > -1e9 else -1e9 for lp in log_probs]  # -inf (masked by top-p) is not a number verl can use
        return TokenOutput(token_ids=tokens, log_probs=log_probs, stop_reason="completed",
                           extra_fields={"global_steps": self.global_steps})

    async def generate(self, prompt_ids, sampling_params, request_id=None, image_data=None, video_data=None,
                       audio_data=None, mm_processor_kwargs=None, **kwargs) -> TokenOutput:
        params = dict(sampling_params or {})
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(None, self._generate, list(prompt_ids), params)

    async def update_weights(self, state_dict: dict[str, torch.Tensor]) -> int:
        async with self._lock:
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
            if self.model.config.tie_word_embeddings:
                missing = [m for m in missing if m != "lm_head.weight"]
            if unexpected or missing:
                logger.warning("hf rollout weight update: missing %s, unexpected %s", missing[:5], unexpected[:5])
            return len(state_dict)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = int(global_steps or 0)
        print(f"hf rollout: weights synced for step {self.global_steps}", flush=True)

    async def abort_all_requests(self, reject_request: bool = False) -> dict:
        return {}

    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def resume_generation(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def start_profile(self, **kwargs) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


class HFReplica(RolloutReplica):
    """One HFRolloutServer actor per replica."""

    async def launch_servers(self):
        name = server_name(self.replica_rank) + self.name_suffix
        model_path = _get(self.model_config, "local_path") or _get(self.model_config, "path")
        threads = int(os.environ.get("SEMANTIC_REWARD_HF_ROLLOUT_THREADS", "2"))
        server = ray.remote(HFRolloutServer).options(
            name=name, num_cpus=threads, max_concurrency=256, get_if_exists=True
        ).remote(str(model_path), self.config.prompt_length, self.config.response_length, "float32", threads)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """The trainer-side half: ships the actor's weights to the server after each update."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, *args, **kwargs):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = max(1, self.config.tensor_model_parallel_size * self.config.data_parallel_size
                    * self.config.pipeline_model_parallel_size)
        self.replica_rank = replica_rank if replica_rank >= 0 else rank // world
        self.is_leader_rank = rank % world == 0

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    async def update_weights(self, weights, wire_format: str = "named_tensors", global_steps=None, **kwargs):
        from verl.workers.rollout.utils import ensure_async_iterator

        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout takes full named tensors, not {wire_format!r}")
        state: dict[str, torch.Tensor] = {}
        async for name, tensor in ensure_async_iterator(weights):  # every rank drains: full_tensor() is collective
            if self.is_leader_rank:
                state[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader_rank:
            server = ray.get_actor(server_name(self.replica_rank))
            await server.update_weights.remote(state)
            await server.set_global_steps.remote(global_steps or 0)
