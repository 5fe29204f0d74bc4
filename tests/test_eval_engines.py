"""Evaluation engines: one per system, shut down before drift and the next system (a stand-in engine records the
lifecycle), the vLLM path's calls (against a recording stand-in of the ``vllm`` package), the transformers engine's
release, and one reading of reasoning blocks shared with the reward."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import types
import weakref
from pathlib import Path

import pytest

from semantic_reward.evaluation.generate import EngineSpec, SystemEngine, answer_text
from semantic_reward.text import normalize, strip_reasoning

# outputs the reward and the evaluation must read alike: an unclosed block (no answer), a block the template
# opened in the prompt, a later <think> (part of the answer), an empty block, plain text, nothing
STRANGE = [
    "<think>\nstill thinking ཀ་ཁ་",
    "reasoning the prompt opened </think>\n\nཀ་ཁ་ག་",
    "ཀ་ཁ་ <think>not a leading block</think> ག་",
    "<think>\n\n</think>\n\nབཀྲ་ཤིས་",
    "  <think>a</think><think>b</think> ང་",
    "བདེ་ལེགས།",
    "",
    "</think>",
]


def test_reward_and_evaluation_read_outputs_alike():
    from semantic_reward.config import SemanticRewardConfig
    from semantic_reward.scorer import SemanticScorer
    from semantic_reward.service import LocalEmbeddingService
    from tests.helpers import HashEncoder

    config = SemanticRewardConfig.from_mapping({})
    scorer = SemanticScorer(config, LocalEmbeddingService(service=config.service, backend=HashEncoder()))
    try:
        expected = ["", "ཀ་ཁ་ག་", "ཀ་ཁ་ <think>not a leading block</think> ག་", "བཀྲ་ཤིས་", "<think>b</think> ང་",
                    "བདེ་ལེགས།", "", ""]
        for output, answer in zip(STRANGE, expected, strict=True):
            assert normalize(answer_text(output)) == answer, output
            assert scorer._as_text(output) == (answer, strip_reasoning(output)[1]), output  # the reward's reading
        async def score_all():
            return await asyncio.gather(*(scorer.score(o, reference="ཀ་ཁ་ག་") for o in STRANGE))

        results = asyncio.run(score_all())
        assert [r["reasoning_length"] for r in results] == [float(strip_reasoning(o)[1]) for o in STRANGE]
    finally:
        scorer.service.close()
    from semantic_reward.evaluation import generate

    assert generate.strip_reasoning is strip_reasoning  # one function, no evaluation-only variant


class Recorder:
    """A stand-in engine factory: each engine answers from its prompt and logs open/generate/shutdown."""

    def __init__(self, outputs: list[str] | None = None):
        self.events: list[tuple] = []
        self.alive: set[str] = set()
        self.specs: list[EngineSpec] = []
        self.outputs = outputs

    def __call__(self, backend: str, spec: EngineSpec):
        assert not self.alive, f"{spec.model} opened while {self.alive} is alive"
        recorder = self
        recorder.alive.add(spec.model)
        recorder.specs.append(spec)
        recorder.events.append(("open", Path(spec.model).name, backend))

        class StandIn:
            def generate(self, prompts, max_new_tokens):
                recorder.events.append(("generate", Path(spec.model).name, len(prompts), max_new_tokens))
                if recorder.outputs is not None:
                    return [recorder.outputs[i % len(recorder.outputs)] for i in range(len(prompts))]
                return [p[-1]["content"][-12:] for p in prompts]

            def shutdown(self):
                recorder.events.append(("shutdown", Path(spec.model).name))
                recorder.alive.discard(spec.model)

        return StandIn()


def _models(root: Path) -> dict[str, Path]:
    from tiny_models import build_tiny_policy, perturbed_copy

    texts = [f"ཀ་ཁ་ག་{i} 天气很好 translate" for i in range(30)]
    base = build_tiny_policy(texts, root / "base", vocab_size=300, hidden_size=32, num_layers=1, num_heads=2)
    return {"base": base, "cold_start": perturbed_copy(base, root / "cold_start", scale=0.3, seed=1),
            "grpo": perturbed_copy(base, root / "grpo", scale=0.3, seed=2)}


def _inputs(root: Path, rows: int = 5) -> tuple[Path, Path]:
    syllables = ["ཀ", "ཁ", "ག", "ང", "ཅ", "ཆ", "ཇ", "ཉ"]
    test = root / "test.jsonl"
    test.write_text("".join(json.dumps({
        "id": f"t{i}", "source": f"句子{i}", "reference": "་".join(syllables[i:] + syllables[:i]) + "།",
        "prompt": [{"role": "user", "content": f"translate {i}: " + "་".join(syllables[: i + 2])}]},
        ensure_ascii=False) + "\n" for i in range(rows)), encoding="utf-8")
    cmrc = root / "cmrc.jsonl"
    cmrc.write_text("".join(json.dumps({
        "id": f"q{i}", "context": f"第{i}段：今天天气很好，我们去公园。", "question": "天气怎么样？",
        "answers": ["很好"]}, ensure_ascii=False) + "\n" for i in range(3)), encoding="utf-8")
    return test, cmrc


def test_one_engine_per_system_shut_down_before_drift_and_the_next(tmp_path, monkeypatch):
    import semantic_reward.evaluation.drift as drift_module
    from semantic_reward.evaluation.run import run_evaluation
    from semantic_reward.evaluation.run_config import EvalRunConfig, build_dataclass

    models = _models(tmp_path)
    test, cmrc = _inputs(tmp_path)
    cfg = build_dataclass(EvalRunConfig, {
        "output_dir": str(tmp_path / "out"), "test_file": str(test), "source_language": "zh",
        "target_language": "bo", "cmrc_file": str(cmrc), "base_model": str(models["base"]), "device": "cpu",
        "n_bootstrap": 20, "ar_trials": 20,
        "generation": {"max_new_tokens": 7, "cmrc_max_new_tokens": 3, "gpu_memory_utilization": 0.6},
        "systems": {name: {"model": str(path)} for name, path in models.items()}})
    recorder = Recorder(STRANGE)
    loaded: list[weakref.ref] = []
    real_load, real_drift = drift_module._load, drift_module.token_drift

    def recording_load(model, device, dtype, adapter=None):
        m = real_load(model, device, dtype, adapter)
        loaded.append(weakref.ref(m))
        return m

    def recording_drift(base, tuned, *args, **kwargs):
        assert not recorder.alive, "drift models loaded while an engine is alive"
        result = real_drift(base, tuned, *args, **kwargs)
        if isinstance(base, str) and isinstance(tuned, str):
            # the models it loaded are gone when it returns (the test collects nothing itself)
            assert loaded and all(ref() is None for ref in loaded), "token_drift kept its models alive"
            recorder.events.append(("drift", Path(tuned).name, kwargs.get("dtype")))
        return result

    monkeypatch.setattr(drift_module, "_load", recording_load)
    monkeypatch.setattr(drift_module, "token_drift", recording_drift)
    report = run_evaluation(cfg, progress=False, engine_factory=recorder)

    assert recorder.events == [
        ("open", "base", "auto"), ("generate", "base", 5, 7), ("generate", "base", 3, 3), ("shutdown", "base"),
        ("open", "cold_start", "auto"), ("generate", "cold_start", 5, 7), ("generate", "cold_start", 3, 3),
        ("shutdown", "cold_start"), ("drift", "base", "float32"),  # the floor: base vs base, once
        ("drift", "cold_start", "float32"),
        ("open", "grpo", "auto"), ("generate", "grpo", 5, 7), ("generate", "grpo", 3, 3), ("shutdown", "grpo"),
        ("drift", "grpo", "float32")]
    assert not recorder.alive
    assert {(s.dtype, s.gpu_memory_utilization, s.adapter, s.enable_thinking) for s in recorder.specs} == {
        ("float32", 0.6, None, False)}
    # the floor is measured once, in the run's dtype, and reported beside the systems' drift
    assert report["model_dtype"] == "float32"
    floor = report["drift_floor"]
    assert floor["same_dtype"]["kl_p90"] == pytest.approx(0.0, abs=1e-7)
    assert floor["other_dtype"]["dtype"] == "bfloat16" and floor["other_dtype"]["tokens"] > 0
    assert report["systems"]["grpo"]["kl_p90"] > floor["same_dtype"]["kl_p90"]
    # what the evaluation wrote is the answer the reward would score
    written = [json.loads(line)["hypothesis"]
               for line in (tmp_path / "out" / "generations" / "grpo.jsonl").read_text().splitlines()]
    assert written == [answer_text(STRANGE[i]) for i in range(5)]
    assert written[0] == "" and written[1] == "ཀ་ཁ་ག་"


def test_an_engine_is_closed_when_the_run_fails(tmp_path):
    from semantic_reward.evaluation.run import run_evaluation
    from semantic_reward.evaluation.run_config import EvalRunConfig, build_dataclass

    test, _ = _inputs(tmp_path)
    recorder = Recorder()

    def failing(backend, spec):
        engine = recorder(backend, spec)

        class Failing:
            def generate(self, prompts, max_new_tokens):
                raise RuntimeError("CUDA out of memory (stand-in)")

            def shutdown(self):
                engine.shutdown()

        return Failing()

    cfg = build_dataclass(EvalRunConfig, {"output_dir": str(tmp_path / "out"), "test_file": str(test),
                                          "source_language": "zh", "target_language": "bo",
                                          "paired_reference": None, "systems": {"a": {"model": str(tmp_path)}}})
    with pytest.raises(RuntimeError, match="stand-in"):
        run_evaluation(cfg, progress=False, engine_factory=failing)
    assert recorder.events == [("open", tmp_path.name, "auto"), ("shutdown", tmp_path.name)]
    assert not (tmp_path / "out").exists()


def test_system_engine_opens_lazily_and_closes_once():
    recorder = Recorder()
    engine = SystemEngine("hf", EngineSpec(model="/m/sys"), recorder)
    engine.close()  # never opened: nothing to shut down
    assert recorder.events == []
    engine = SystemEngine("hf", EngineSpec(model="/m/sys"), recorder)
    assert engine.generate([[{"role": "user", "content": "hello"}]], 4) == ["hello"]
    engine.generate([[{"role": "user", "content": "again"}]], 4)
    engine.close()
    engine.close()
    assert recorder.events == [("open", "sys", "hf"), ("generate", "sys", 1, 4), ("generate", "sys", 1, 4),
                               ("shutdown", "sys")]
    with pytest.raises(RuntimeError, match="already closed"):
        engine.generate([[{"role": "user", "content": "late"}]], 4)
    with pytest.raises(ValueError, match="dtype"):
        EngineSpec(model="m", dtype="auto")
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        EngineSpec(model="m", gpu_memory_utilization=0.0)


def test_transformers_engine_releases_its_model(tmp_path):
    from semantic_reward.evaluation.generate import HfEngine

    models = _models(tmp_path)
    engine = HfEngine(EngineSpec(model=str(models["grpo"]), device="cpu", progress=False, batch_size=2))
    import torch

    assert next(engine.model.parameters()).dtype == torch.float32
    prompts = [[{"role": "user", "content": f"translate {i}"}] for i in range(3)]
    first = engine.generate(prompts, 4)
    assert len(first) == 3 and engine.generate(prompts, 4) == first  # greedy: the same outputs again
    ref = weakref.ref(engine.model)
    engine.shutdown()
    assert ref() is None
    with pytest.raises(RuntimeError, match="shut down"):
        engine.generate(prompts, 4)


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in ``vllm`` package recording what the engine asks of it (vLLM is not installed here)."""
    calls: list[tuple] = []

    class Output:
        def __init__(self, text):
            self.outputs = [types.SimpleNamespace(text=text)]

    class LLM:
        def __init__(self, **kwargs):
            calls.append(("LLM", kwargs))

        def chat(self, messages, params, **kwargs):
            calls.append(("chat", len(messages), params, kwargs))
            return [Output(f"<think>\n\n</think>\n\nཀ་{i}") for i in range(len(messages))]

        def shutdown(self):
            calls.append(("shutdown",))

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LoRARequest:
        def __init__(self, name, int_id, path):
            self.args = (name, int_id, path)

    def cleanup_dist_env_and_memory(shutdown_ray=False):
        calls.append(("cleanup_dist_env_and_memory",))

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    lora_request = types.ModuleType("vllm.lora.request")
    lora_request.LoRARequest = LoRARequest
    distributed = types.ModuleType("vllm.distributed")
    parallel_state = types.ModuleType("vllm.distributed.parallel_state")
    parallel_state.cleanup_dist_env_and_memory = cleanup_dist_env_and_memory
    for name, module in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": lora_request,
                         "vllm.distributed": distributed, "vllm.distributed.parallel_state": parallel_state}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_vllm_engine_loads_in_the_evaluation_dtype_serves_the_adapter_and_tears_down(tmp_path, fake_vllm):
    from semantic_reward.evaluation.generate import VllmEngine, open_engine

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 32, "lora_alpha": 64}))
    engine = open_engine("vllm", EngineSpec(model="/models/parent", adapter=str(adapter), dtype="float32",
                                            gpu_memory_utilization=0.7, progress=False))
    assert isinstance(engine, VllmEngine)
    out = engine.generate([[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], 9)
    assert [answer_text(o) for o in out] == ["ཀ་0", "ཀ་1"]
    engine.shutdown()
    engine.shutdown()  # idempotent
    (_, init), (_, n, params, chat), *rest = fake_vllm
    assert init == {"model": "/models/parent", "dtype": "float32", "gpu_memory_utilization": 0.7, "seed": 0,
                    "enable_lora": True, "max_loras": 1, "max_lora_rank": 32}
    assert n == 2 and params.kwargs == {"temperature": 0.0, "max_tokens": 9, "seed": 0}
    assert chat["lora_request"].args == ("evaluated_adapter", 1, str(adapter))
    assert chat["chat_template_kwargs"] == {"enable_thinking": False} and chat["use_tqdm"] is False
    assert rest == [("shutdown",), ("cleanup_dist_env_and_memory",)]
    with pytest.raises(RuntimeError, match="shut down"):
        engine.generate([[{"role": "user", "content": "c"}]], 1)

    fake_vllm.clear()
    plain = open_engine("vllm", EngineSpec(model="/models/merged", dtype="float32"))
    plain.shutdown()
    assert fake_vllm[0] == ("LLM", {"model": "/models/merged", "dtype": "float32", "gpu_memory_utilization": 0.85,
                                    "seed": 0})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="adapter_config.json: field 'r'"):
        open_engine("vllm", EngineSpec(model="/m", adapter=str(tmp_path / "bad")))
    gc.collect()


def test_engine_settings_fail_at_start(tmp_path):
    from semantic_reward.config import ConfigError
    from semantic_reward.evaluation.run_config import EvalRunConfig, build_dataclass

    test, _ = _inputs(tmp_path)
    good = {"output_dir": str(tmp_path / "out"), "test_file": str(test), "source_language": "zh",
            "target_language": "bo", "paired_reference": None, "systems": {"a": {"model": str(tmp_path)}}}
    cfg = build_dataclass(EvalRunConfig, good)
    assert (str(cfg.generation.dtype), cfg.generation.gpu_memory_utilization) == ("float32", 0.85)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    cases = [
        ({"generation": {"dtype": "auto"}}, "generation.dtype"),
        ({"generation": {"gpu_memory_utilization": 1.5}}, "generation.gpu_memory_utilization"),
        ({"systems": {"a": {"generations": str(test), "adapter": str(adapter)}}}, "systems.a.adapter"),
        ({"systems": {"a": {"model": str(tmp_path), "adapter": str(adapter)}}}, "no adapter_config.json"),
        ({"systems": {"a": {"model": str(tmp_path), "adapter": str(tmp_path / "absent")}}}, "does not exist"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            build_dataclass(EvalRunConfig, {**good, **change})
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4}))
    tuned = build_dataclass(EvalRunConfig, {**good, "base_model": str(tmp_path),
                                            "systems": {"a": {"model": str(tmp_path), "adapter": str(adapter)}}})
    assert not tuned.is_base("a")  # base + an adapter is a tuned system, not the base
