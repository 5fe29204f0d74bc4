"""A HuggingFace-transformers rollout for verl, registered as ``rollout.name=hf``.

verl 0.9.1 ships rollouts for vLLM, SGLang and TensorRT-LLM only, all GPU-bound. This
one lets the real GRPO loop run on a CPU (with the CPU platform): a Ray actor per
replica generates token-in/token-out with ``transformers`` (concurrent requests batched) and returns per-token
log-probs of the processed (temperature / top-p) distribution, as vLLM does; sleep,
wake-up and cache calls are no-ops. It is slow and meant for small models and tests.

Weight updates arrive the way verl's vLLM rollout receives them
(``engine_workers.ActorRolloutRefWorker.update_weights``): full tensors after each
step; or, with LoRA (``model.lora_rank > 0``, ``model.lora.merge: false``), a
one-time base sync (full base weights, target modules named ``...base_layer.weight``)
followed by the adapter alone each step, with its PEFT config. The server wraps its
model with that PEFT config and loads the adapter, as vLLM's ``add_lora`` does. With
``model.lora.merge: true`` verl sends merged full tensors instead. An update that
leaves any received tensor or any model weight unmatched raises: a rollout that
silently keeps its old weights makes GRPO's importance ratios meaningless.

Settings come from the rollout config: ``rollout.dtype`` (use ``float32`` on a CPU),
``rollout.seed`` (verl's; as vLLM's engine seed is ``seed + replica rank``, each request samples
from its own generator, seeded with that, the step, its prompt and its copy number, so a rerun
of a config samples the same rollouts however the requests were batched: ``seeded_sampling``)
and ``rollout.engine_kwargs.hf`` (``num_threads``: torch threads and Ray CPUs of the server).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

import ray
import torch
from transformers import LogitsProcessorList
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from semantic_reward.config import ConfigError, build_dataclass

from .patches import cpu_selected
from .seeded_sampling import RowSampler, request_seed

__all__ = ["HFEngineSettings", "HFRolloutServer", "HFReplica", "HFServerAdapter", "WeightUpdateError",
           "load_full_weights", "load_lora_adapter", "server_name"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


class WeightUpdateError(RuntimeError):
    """A weight update from the trainer did not land completely in the rollout's model."""


@dataclass
class HFEngineSettings:
    """``rollout.engine_kwargs.hf``: settings of the transformers rollout server."""

    num_threads: int = 2  # torch threads of the server, and the Ray CPUs it reserves

    def __post_init__(self) -> None:
        if not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ConfigError(f"rollout setting 'engine_kwargs.hf.num_threads': expected an integer >= 1, "
                              f"got {self.num_threads!r}")


def server_name(replica_rank: int) -> str:
    return f"semantic_reward_hf_rollout_server_{replica_rank}"


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a dict/DictConfig or of a dataclass config."""
    return obj.get(key, default) if hasattr(obj, "get") else getattr(obj, key, default)


def torch_dtype(name: str) -> torch.dtype:
    """``rollout.dtype`` as a torch dtype (verl's names and torch's)."""
    try:
        return _DTYPES[str(name).lower()]
    except KeyError:
        raise ConfigError(f"rollout setting 'dtype': expected one of {sorted(_DTYPES)}, got {name!r}") from None


def _base_name(name: str) -> str:
    """The plain HF name of a weight, with PEFT's ``base_layer`` hop removed."""
    return name.replace(".base_layer.", ".")


def _base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a PEFT wrapper (its LoRA-targeted layers keep ``base_layer`` inside)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def load_full_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy full (HF-named) weights into ``model``, PEFT-wrapped or not; every name must match both ways.

    Names may carry PEFT's ``.base_layer.`` (verl's LoRA base sync) or not (a full update). Raises
    ``WeightUpdateError`` naming what did not match; returns the number of tensors loaded.
    """
    base = _base_model(model)
    targets = {_base_name(k): k for k in base.state_dict() if "lora_" not in k}
    tied = bool(getattr(getattr(base, "config", None), "tie_word_embeddings", False))
    unexpected = [k for k in state if _base_name(k) not in targets]
    mapped = {targets[_base_name(k)]: v for k, v in state.items() if _base_name(k) in targets}
    missing = [k for k in targets.values() if k not in mapped and not (tied and k == "lm_head.weight")]
    if not state or unexpected or missing:
        raise WeightUpdateError(
            f"hf rollout: full weight update of {len(state)} tensors does not match the model: "
            f"{len(unexpected)} received names unknown to it {unexpected[:5]}, {len(missing)} of its weights not "
            f"sent {missing[:5]}")
    with torch.no_grad():
        base.load_state_dict(mapped, strict=False)
    return len(mapped)


def load_lora_adapter(model: torch.nn.Module, adapter: dict[str, torch.Tensor], peft_config: dict[str, Any]):
    """Load a LoRA adapter as verl sends it (``get_peft_model_state_dict`` names); returns the PEFT model.

    The model is wrapped with ``peft_config`` on the first adapter (as vLLM's ``add_lora`` adds one); later
    adapters replace the weights of that one. Every adapter tensor must land and every LoRA weight of the
    model must be sent, or ``WeightUpdateError`` is raised.
    """
    from peft import get_peft_config, get_peft_model, set_peft_model_state_dict

    if not adapter:
        raise WeightUpdateError("hf rollout: a LoRA update with no adapter tensors")
    if not hasattr(model, "peft_config"):
        config = get_peft_config({**peft_config, "inference_mode": True})
        model = get_peft_model(model, config).eval()
    with torch.no_grad():
        result = set_peft_model_state_dict(model, adapter)
    lora_weights = [k for k in model.state_dict() if "lora_" in k]
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing or not lora_weights:
        raise WeightUpdateError(
            f"hf rollout: LoRA update of {len(adapter)} tensors does not match the model's adapter "
            f"({len(lora_weights)} LoRA weights): unexpected {list(result.unexpected_keys)[:5]}, "
            f"not sent {missing[:5]}")
    return model


class HFRolloutServer:
    """Generation server (a Ray actor): one transformers model; concurrent requests are generated in batches."""

    def __init__(self, model_path: str, prompt_length: int, response_length: int, dtype: str = "float32",
                 num_threads: int = 0, max_batch: int = 64, gather_seconds: float = 0.02, seed: int = 42):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if num_threads:
            torch.set_num_threads(num_threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype)).eval()
        self.prompt_length = prompt_length
        self.response_length = response_length
        self.global_steps = 0
        self.seed = int(seed)
        self._copies: dict[tuple[int, ...], int] = {}
        self._copies_step = 0
        self.updates: list[dict[str, Any]] = []  # what each weight update loaded, for checks and logs
        self._lock = asyncio.Lock()
        self.max_batch, self.gather_seconds = max_batch, gather_seconds
        self._pending: list[tuple[list[int], dict[str, Any], int, asyncio.Future]] = []  # prompt, params, seed, reply
        self._server_task: asyncio.Future | None = None
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.eos_ids.discard(None)

    def _next_seed(self, prompt_ids: list[int]) -> int:
        """The next request's seed: the k-th request for a prompt in a step is its k-th copy (GRPO's n)."""
        if self._copies_step != self.global_steps:
            self._copies, self._copies_step = {}, self.global_steps
        key = tuple(prompt_ids)
        copy = self._copies.get(key, 0)
        self._copies[key] = copy + 1
        return request_seed(self.seed, self.global_steps, prompt_ids, copy)

    @staticmethod
    def _sampling_key(params: dict[str, Any]) -> tuple:
        """Requests that share these settings can be generated in one batch."""
        return (float(params.get("temperature", 1.0)), float(params.get("top_p", 1.0)), int(params.get("top_k", -1)),
                tuple(sorted(params.get("stop_token_ids") or [])))

    def _max_tokens(self, prompt_ids: list[int], params: dict[str, Any]) -> int:
        max_tokens = params.get("max_tokens") or params.get("max_new_tokens")
        if max_tokens is None:
            max_tokens = min(self.response_length, self.prompt_length + self.response_length - len(prompt_ids))
        return max(1, int(max_tokens))

    def _generate_batch(self, prompts: list[list[int]], params: dict[str, Any],
                        seeds: list[int] | None = None) -> list[TokenOutput]:
        """Generate for prompts that share sampling settings in one left-padded ``generate`` call.

        Served one by one, a CPU spends most of each request in per-call overhead (measured on the
        quickstart's 2-layer policy: 32 requests of 32 tokens took ~12 s one at a time inside Ray).
        Each row is cut at its own first stop token and its own ``max_tokens``; it samples from its own
        generator (``seeds``, one per prompt; by default the next copy of each prompt at this step).
        """
        temperature, top_p, top_k, stop = self._sampling_key(params)
        limits = [self._max_tokens(p, params) for p in prompts]
        stop_ids = set(stop) | self.eos_ids
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(stop_ids)
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: every row's next token is at the same column
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        sampler = None
        if temperature > 0:
            seeds = seeds if seeds is not None else [self._next_seed(p) for p in prompts]
            sampler = RowSampler(seeds, temperature, top_p, top_k)
        with torch.inference_mode():  # greedy: at temperature > 0 over the sampler's one-hot choices
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, temperature=None, top_p=None, top_k=None,
                logits_processor=LogitsProcessorList([sampler]) if sampler else None, max_new_tokens=max(limits),
                eos_token_id=sorted(stop_ids), pad_token_id=pad_id,
                output_scores=sampler is None, return_dict_in_generate=True,  # the sampler keeps its log-probs
            )
        results = []
        for row, limit in enumerate(limits):
            tokens: list[int] = []
            for tok in out.sequences[row, width:width + limit].tolist():
                tokens.append(tok)
                if tok in stop_ids:
                    break
            if sampler is not None:
                log_probs = sampler.log_probs[row][:len(tokens)]
            else:
                log_probs = [float(torch.log_softmax(out.scores[t][row].float(), dim=-1)[tok])
                             for t, tok in enumerate(tokens)]
            results.append(TokenOutput(token_ids=tokens, log_probs=log_probs, stop_reason="completed",
                                       extra_fields={"global_steps": self.global_steps}))
        return results

    async def _serve_pending(self) -> None:
        """Drain the request queue in batches (one batch per set of sampling settings)."""
        while self._pending:
            async with self._lock:
                await asyncio.sleep(self.gather_seconds)  # let the other requests of this round arrive
                pending, self._pending = self._pending, []
                groups: dict[tuple, list[tuple[list[int], dict[str, Any], int, asyncio.Future]]] = {}
                for item in pending:
                    groups.setdefault(self._sampling_key(item[1]), []).append(item)
                for items in groups.values():
                    for start in range(0, len(items), self.max_batch):
                        chunk = items[start:start + self.max_batch]
                        try:
                            outputs = await asyncio.get_running_loop().run_in_executor(
                                None, self._generate_batch, [p for p, _, _, _ in chunk], chunk[0][1],
                                [s for _, _, s, _ in chunk])
                        except Exception as exc:  # every waiting request learns why
                            for _, _, _, fut in chunk:
                                if not fut.done():
                                    fut.set_exception(exc)
                            continue
                        for (_, _, _, fut), output in zip(chunk, outputs):
                            if not fut.done():
                                fut.set_result(output)

    async def generate(self, prompt_ids, sampling_params, request_id=None, image_data=None, video_data=None,
                       audio_data=None, mm_processor_kwargs=None, **kwargs) -> TokenOutput:
        future = asyncio.get_running_loop().create_future()
        prompt_ids = list(prompt_ids)
        # seeded on arrival: which copy of a prompt a request is does not depend on how requests get batched
        self._pending.append((prompt_ids, dict(sampling_params or {}), self._next_seed(prompt_ids), future))
        if self._server_task is None or self._server_task.done():
            self._server_task = asyncio.ensure_future(self._serve_pending())
        return await future

    async def update_weights(self, state_dict: dict[str, torch.Tensor], peft_config: dict | None = None,
                             base_sync_done: bool = True) -> dict[str, Any]:
        """Apply one update from the trainer; raises ``WeightUpdateError`` unless all of it landed."""
        async with self._lock:
            if peft_config and base_sync_done:
                self.model = load_lora_adapter(self.model, state_dict, peft_config)
                record = {"kind": "lora_adapter", "tensors": len(state_dict)}
            else:
                loaded = load_full_weights(self.model, state_dict)
                record = {"kind": "lora_base" if peft_config else "full", "tensors": loaded}
            self.updates.append(record)
            logger.info("hf rollout: weight update %s", record)
            return record

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = int(global_steps or 0)
        logger.info("hf rollout: weights synced for step %d", self.global_steps)

    async def weight_updates(self) -> list[dict[str, Any]]:
        return list(self.updates)

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
    """One HFRolloutServer actor per replica, sized by ``rollout.engine_kwargs.hf``."""

    async def launch_servers(self):
        name = server_name(self.replica_rank) + self.name_suffix
        model_path = _get(self.model_config, "local_path") or _get(self.model_config, "path")
        engine = build_dataclass(HFEngineSettings, _get(_get(self.config, "engine_kwargs", {}), "hf", None) or {},
                                 prefix="engine_kwargs.hf.", what="rollout setting")
        if torch_dtype(self.config.dtype) != torch.float32 and cpu_selected():
            logger.warning("hf rollout on the CPU platform with rollout.dtype=%s: set actor_rollout_ref.rollout."
                           "dtype=float32 (and fp32 training) or rollout log-probs drift from the actor's",
                           self.config.dtype)
        server = ray.remote(HFRolloutServer).options(
            name=name, num_cpus=engine.num_threads, max_concurrency=256, get_if_exists=True
        ).remote(str(model_path), self.config.prompt_length, self.config.response_length, str(self.config.dtype),
                 engine.num_threads, seed=int(_get(self.config, "seed", 42)) + self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """The trainer-side half: ships the actor's weights (full, or LoRA base + adapter) to the server."""

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

    async def update_weights(self, weights, wire_format: str = "named_tensors", global_steps=None,
                             peft_config: dict | None = None, base_sync_done: bool = True, **kwargs):
        from verl.workers.rollout.utils import ensure_async_iterator

        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout takes named tensors, not {wire_format!r}")
        state: dict[str, torch.Tensor] = {}
        async for name, tensor in ensure_async_iterator(weights):  # every rank drains: full_tensor() is collective
            if self.is_leader_rank:
                state[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader_rank:
            server = ray.get_actor(server_name(self.replica_rank))
            await server.update_weights.remote(state, peft_config, base_sync_done)
            await server.set_global_steps.remote(global_steps or 0)
