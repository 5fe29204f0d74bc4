"""The evaluated LoRA model is the trained one: an update of the paper's size survives to the evaluated logits.

The paper's GRPO runs at lr 5e-7; Adam moves a weight by about lr per step, so ~100 steps
move it by ~5e-5. Typical weights are ~0.02 (Qwen3's initializer range), where one bf16
step is 1.2e-4: half of it is above the update. The tiny Qwen3 here has those magnitudes,
its base weights are bf16 values (as a published bf16 checkpoint's are), and its LoRA
update is scaled to RMS 5e-5 per weight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

LR, STEPS = 5e-7, 100
UPDATE_RMS = LR * STEPS  # ~5e-5 per weight
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def lora_handoff(tmp_path_factory, tiny_tokenizer_dir):
    """base (bf16-valued weights, saved fp32), a LoRA adapter of the paper's update size, and merge_lora's output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from semantic_reward.experiment.handoff import merge_lora

    root = tmp_path_factory.mktemp("lora_eval")
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=16, tie_word_embeddings=True,
                         initializer_range=0.02)
    base = Qwen3ForCausalLM(config)
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(p.to(torch.bfloat16).float())  # a bf16 checkpoint's values
    base.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=False))
    with torch.no_grad():
        for module in peft_model.modules():
            if hasattr(module, "lora_A") and "default" in module.lora_A:
                a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
                delta = (b @ a) * module.scaling["default"]
                b.mul_(UPDATE_RMS / delta.pow(2).mean().sqrt())
    peft_model.save_pretrained(root / "adapter")
    merged = merge_lora(root / "base", root / "adapter", root / "merged")
    ids = torch.tensor([tok("translate the sentence into Tibetan ཀ་ཁ་ག་ 天气很好").input_ids])
    return {"base": str(root / "base"), "adapter": str(root / "adapter"), "merged": str(merged), "ids": ids,
            "tokenizer": tok}


def _logits(model_dir: str, ids, dtype: str, adapter: str | None = None):
    """Logits of the model the evaluation's transformers engine loads (the engine under test), as fp32."""
    from semantic_reward.evaluation.generate import EngineSpec, HfEngine

    engine = HfEngine(EngineSpec(model=model_dir, adapter=adapter, dtype=dtype, device="cpu", progress=False))
    try:
        with torch.no_grad():
            return engine.model(ids).logits.float()
    finally:
        engine.shutdown()


def _cos(a, b) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_the_default_evaluation_dtype_keeps_the_update(lora_handoff):
    from semantic_reward.evaluation.run_config import GenerationSettings

    h, dtype = lora_handoff, str(GenerationSettings().dtype)
    assert dtype == "float32"
    base = _logits(h["base"], h["ids"], dtype)
    merged = _logits(h["merged"], h["ids"], dtype)
    adapter = _logits(h["base"], h["ids"], dtype, adapter=h["adapter"])  # base + adapter, unmerged (PEFT)
    update = (adapter - base).abs().max().item()
    assert update > 1e-3  # the update moves the logits (they are ~1 here)
    assert (merged - adapter).abs().max().item() < 1e-5 < update / 100  # the fp32 merge is the trained model
    assert _cos(merged - base, adapter - base) > 0.9999


def test_a_bf16_load_of_the_merged_handoff_rounds_the_update_away(lora_handoff):
    from transformers import AutoModelForCausalLM

    h = lora_handoff
    merged32 = AutoModelForCausalLM.from_pretrained(h["merged"], dtype=torch.float32).state_dict()
    merged16 = AutoModelForCausalLM.from_pretrained(h["merged"], dtype=torch.bfloat16).state_dict()
    base = AutoModelForCausalLM.from_pretrained(h["base"], dtype=torch.float32).state_dict()
    keys = [k for k in base if any(t in k for t in TARGETS)]
    true = torch.cat([(merged32[k] - base[k]).flatten() for k in keys])
    kept = torch.cat([(merged16[k].float() - base[k]).flatten() for k in keys])
    assert true.pow(2).mean().sqrt().item() == pytest.approx(UPDATE_RMS, rel=0.05)
    erased = (kept == 0).float().mean().item()
    assert erased > 0.4  # measured 0.53: half the update's entries round back to the base's value

    # what a bf16 evaluation sees: the logit change is mostly rounding, not the update
    true_change = _logits(h["base"], h["ids"], "float32", adapter=h["adapter"]) - _logits(h["base"], h["ids"],
                                                                                          "float32")
    bf16_change = _logits(h["merged"], h["ids"], "bfloat16") - _logits(h["base"], h["ids"], "bfloat16")
    assert _cos(bf16_change, true_change) < 0.6  # measured 0.34 (fp32: 1.0)


def test_drift_of_the_update_is_below_the_bf16_rounding_floor(lora_handoff):
    """Drift in one dtype measures the update; the floor shows what a dtype mismatch alone would report."""
    from semantic_reward.evaluation.drift import drift_floor, drift_summary, token_drift

    h = lora_handoff
    texts = ["translate the sentence into Tibetan", "ཀ་ཁ་ག་ང་ཅ་ཆ་ཇ་ཉ་", "天气很好，我们去公园散步吧。"]
    floor = drift_floor(h["base"], h["tokenizer"], texts, dtype="float32", progress=False)
    assert floor["dtype"] == "float32" and floor["other_dtype"]["dtype"] == "bfloat16"
    assert floor["same_dtype"]["kl_p90"] == pytest.approx(0.0, abs=1e-7)
    update_arrays = token_drift(h["base"], h["merged"], h["tokenizer"], texts, progress=False)
    adapter_arrays = token_drift(h["base"], h["base"], h["tokenizer"], texts, progress=False,
                                 tuned_adapter=h["adapter"])
    update = drift_summary(update_arrays)
    assert update["tokens"] == floor["same_dtype"]["tokens"] > 0
    moved = float(abs(update_arrays["nll_increase"]).max())
    assert moved > 1e-4  # the update is measured
    # merged == base + adapter, token by token
    assert abs(update_arrays["nll_increase"] - adapter_arrays["nll_increase"]).max() < moved / 100
    # a base loaded in bf16 beside the fp32 tuned model would report more drift than the update itself has
    assert floor["other_dtype"]["kl_p90"] > update["kl_p90"]
    assert floor["other_dtype"]["nll_increase_p90"] > update["nll_increase_p90"]


def test_lora_handoff_keeps_the_parent_and_adapter_beside_the_fp32_merge(lora_handoff, tmp_path):
    """export_checkpoint with a stand-in for verl's merger (it writes the parent's weights + lora_adapter/)."""
    import shutil

    from semantic_reward.experiment.handoff import export_checkpoint, read_handoff

    h = lora_handoff
    step = tmp_path / "global_step_3"
    (step / "actor").mkdir(parents=True)
    (step / "actor" / "lora_train_meta.json").write_text("{}")
    commands = []

    def merger(cmd, log_path):
        commands.append(cmd)
        target = Path(cmd[cmd.index("--target_dir") + 1])
        shutil.copytree(h["base"], target)
        shutil.copytree(h["adapter"], target / "lora_adapter")

    out = export_checkpoint(step, tmp_path / "grpo_merged", run=merger)
    assert commands and commands[0][commands[0].index("--local_dir") + 1] == str(step / "actor")
    record = read_handoff(out)
    assert record["lora"] is True and record["merge_dtype"] == "float32"
    assert Path(record["adapter_base"]) == (tmp_path / "grpo_merged_verl_merger").resolve()
    assert (Path(record["adapter"]) / "adapter_config.json").is_file()
    # the three ways to evaluate it agree: the fp32 merge, the kept parent + adapter, the original pair
    merged = _logits(str(out), h["ids"], "float32")
    kept = _logits(record["adapter_base"], h["ids"], "float32", adapter=record["adapter"])
    original = _logits(h["base"], h["ids"], "float32", adapter=h["adapter"])
    assert (merged - kept).abs().max().item() < 1e-5 and torch.equal(kept, original)
    assert read_handoff(tmp_path) is None



def test_report_md_states_the_drift_floor_beside_the_drift():
    from semantic_reward.evaluation.report import _floor_note

    report = {"drift_floor": {"dtype": "float32",
                              "same_dtype": {"nll_increase_p90": 0.0, "kl_p90": 0.0},
                              "other_dtype": {"dtype": "bfloat16", "nll_increase_p90": 0.0297, "kl_p90": 0.00048}}}
    assert _floor_note(report) == (" Models load in float32; the base against itself gives NLL incr. P90 0.0000, "
                                   "against itself in bfloat16 0.0297 (token KL P90 0.00048): a system's drift "
                                   "below that is rounding, not training.")
    assert _floor_note({}) == ""
