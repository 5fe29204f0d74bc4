"""Issue 11 item 7: each reward component's per-step mean in verl's training metrics, on both trainers."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.reward_math import REWARD_KEYS
from semantic_reward.scorer import SemanticScorer
from semantic_reward.service import LocalEmbeddingService
from semantic_reward.verl_adapter import metrics as hook
from tests.helpers import HashEncoder

OUTPUTS = ["བཀྲ་ཤིས་བདེ་ལེགས།", "你好世界", "", "བཀྲ་ཤིས་ hello", "བཀྲ་ཤིས་བདེ་ལེགས། བཀྲ་ཤིས་བདེ་ལེགས། བཀྲ་ཤིས་བདེ་ལེགས།"]
REFERENCES = ["བཀྲ་ཤིས་བདེ་ལེགས།", "བཀྲ་ཤིས།", "བདེ་ལེགས།", "བཀྲ་ཤིས་", "བཀྲ་ཤིས་བདེ་ལེགས།"]


@pytest.fixture(scope="module")
def results() -> list[dict]:
    """Real reward results (all components) from the scorer, with a deterministic encoder."""
    penalties = {"repetition_penalty": {"weight": 0.5}, "length_penalty": {"weight": 0.5}}
    config = SemanticRewardConfig.from_mapping(penalties)
    scorer = SemanticScorer(config, LocalEmbeddingService(service=config.service, backend=HashEncoder()))
    out = scorer.score_batch(OUTPUTS, REFERENCES, [None] * 5, [None] * 5)
    scorer.service.close()
    return out


def _expected(results: list[dict]) -> dict[str, float]:
    return {f"semantic_reward/{k}/mean": float(np.mean([r[k] for r in results])) for k in REWARD_KEYS}


def test_component_means_cover_every_component_and_skip_bad_values(results):
    columns = {k: np.array([r[k] for r in results]) for k in REWARD_KEYS}
    means = hook.component_means(columns)
    assert set(means) == {f"semantic_reward/{k}/mean" for k in REWARD_KEYS}
    for key, value in _expected(results).items():
        assert means[key] == pytest.approx(value, abs=1e-12)
    assert 0 < means["semantic_reward/language_reward/mean"] < 1  # the batch mixes passes and failures
    columns["semantic_similarity"] = np.array([0.5, None, float("nan"), 0.7, "x"], dtype=object)
    assert hook.component_means(columns)["semantic_reward/semantic_similarity/mean"] == pytest.approx(0.6)
    assert hook.component_means({"score": [1.0, 2.0], "acc": [1, 0]}) == {}  # another reward's batch: untouched
    extra = {"semantic_similarity": [0.2, 0.4], "language_reward": [1.0, 0.0], "reasoning_length": [10, 30]}
    means = hook.component_means(extra, keys=[*REWARD_KEYS, "reasoning_length"])  # a component added later
    assert means["semantic_reward/reasoning_length/mean"] == 20.0


def _rollout_batch(results):
    """A legacy-trainer batch as fit() holds it when it calls compute_data_metrics."""
    from verl import DataProto

    n, p, r = len(results), 6, 5
    attention = torch.ones(n, p + r, dtype=torch.long)
    attention[:, p + 3 :] = 0
    scores = torch.zeros(n, r)
    scores[:, 2] = torch.tensor([x["score"] for x in results])
    tensors = {
        "prompts": torch.randint(0, 50, (n, p)), "responses": torch.randint(0, 50, (n, r)),
        "attention_mask": attention, "response_mask": attention[:, p:], "token_level_scores": scores,
        "token_level_rewards": scores, "advantages": torch.randn(n, r), "returns": torch.randn(n, r),
    }
    non_tensors = {k: np.array([x[k] for x in results]) for k in REWARD_KEYS}
    non_tensors["uid"] = np.array([f"u{i}" for i in range(n)], dtype=object)
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def test_legacy_trainer_metrics_get_the_components(results, monkeypatch):
    import verl.trainer.ppo.ray_trainer as legacy

    monkeypatch.setattr(legacy, "compute_data_metrics", legacy.compute_data_metrics)  # undone after the test
    hook.patch_legacy_trainer(legacy)
    hook.patch_legacy_trainer(legacy)  # idempotent
    metrics = legacy.compute_data_metrics(batch=_rollout_batch(results), use_critic=False)
    assert metrics["critic/score/mean"] == pytest.approx(np.mean([x["score"] for x in results]), abs=1e-6)
    for key, value in _expected(results).items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert metrics["semantic_reward/score/mean"] == pytest.approx(metrics["critic/score/mean"], abs=1e-6)


def test_v1_trainer_metrics_read_the_components_from_transfer_queue(results):
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    keys = [f"uid{i}_0_0" for i in range(len(results))] + ["pad_0_0"]
    tags = [{"status": "success"} for _ in results] + [{"is_padding": True}]
    store = {k: {"uid": k, "responses": torch.tensor([1, 2]),
                 "extra_fields": {"reward_extra_info": r, "global_steps": 1}}
             for k, r in zip(keys, results, strict=False)}
    store["pad_0_0"] = {"uid": "pad", "responses": torch.tensor([1]),
                        "extra_fields": {"reward_extra_info": {k: 99.0 for k in REWARD_KEYS}}}
    asked = []

    def kv_batch_get(keys, partition_id, select_fields):
        asked.append((tuple(keys), partition_id, tuple(select_fields)))
        return list_of_dict_to_tensordict([{f: store[k][f] for f in select_fields} for k in keys])

    class Trainer:  # stands in for verl's PPOTrainer, whose own _compute_metrics needs a live TransferQueue
        def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
            metrics["training/global_step"] = global_steps

    module = types.SimpleNamespace(__name__="fake_trainer_base", PPOTrainer=Trainer,
                                   tq=types.SimpleNamespace(kv_batch_get=kv_batch_get))
    hook.patch_v1_trainer(module)
    metrics: dict = {}
    Trainer()._compute_metrics(KVBatchMeta(keys=keys, tags=tags, partition_id="train"), metrics, {}, 3, 0)
    assert metrics["training/global_step"] == 3
    for key, value in _expected(results).items():  # the padding sample (99.0 everywhere) is left out
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert asked == [(tuple(keys[:-1]), "train", ("uid", "responses", "extra_fields"))]  # one read for all
    assert "semantic_reward/diagnostics/tau_floor_share" in metrics  # no tokenizer on this stand-in: no text ones
    assert not any(k.startswith("semantic_reward/diagnostics/distinct") for k in metrics)


def test_a_failing_read_warns_once_and_never_stops_training(caplog):
    calls = []

    class Trainer:
        def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
            calls.append(global_steps)

    def broken_get(**kwargs):
        raise KeyError("extra_fields")

    tq = types.SimpleNamespace(kv_batch_get=broken_get)
    module = types.SimpleNamespace(__name__="fake", PPOTrainer=Trainer, tq=tq)
    hook.patch_v1_trainer(module)
    batch = types.SimpleNamespace(keys=["a"], tags=[{}], partition_id="train")
    for step in (1, 2, 3):
        Trainer()._compute_metrics(batch, {}, {}, step, 0)
    assert calls == [1, 2, 3]
    assert sum("reward component metrics are skipped" in r.getMessage() for r in caplog.records) == 1


def test_other_verl_version_is_a_clear_error(monkeypatch):
    import verl

    monkeypatch.setattr(verl, "__version__", "0.10.0")
    module = types.SimpleNamespace(__name__="x", compute_data_metrics=lambda batch, use_critic=True: {})
    with pytest.raises(hook.MetricsHookError, match=r"written for verl 0\.9\.1 and verl 0\.10\.0 is installed.*"
                                                    r"SEMANTIC_REWARD_TRAIN_METRICS=0"):
        hook.patch_legacy_trainer(module)


def _fresh_interpreter(code: str, **env: str) -> str:
    import os

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **env})
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_importing_verl_activates_the_hook_on_both_trainers():
    """The plugin imports the manager in every verl process; the trainers are patched when they load."""
    code = (
        "import verl, semantic_reward.verl_adapter.manager\n"
        "import verl.trainer.ppo.ray_trainer as legacy, verl.trainer.ppo.v1.trainer_base as v1\n"
        "print(getattr(legacy.compute_data_metrics, '_semantic_reward_metrics', False),"
        " getattr(v1.PPOTrainer._compute_metrics, '_semantic_reward_metrics', False))\n"
    )
    assert _fresh_interpreter(code) == "True True"
    assert _fresh_interpreter(code, SEMANTIC_REWARD_TRAIN_METRICS="0") == "False False"


# -- issue 20 item 3: the reward-hacking diagnostics in the same metrics dict ----------------------------------
VOCAB = {1: "ཀ་", 2: "ཁ་", 3: "ག་", 4: "<think>x</think>", 5: "ང"}


class _Tokenizer:
    """Decodes ids by a fixed table, as the trainer's tokenizer decodes a response."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(VOCAB[int(i)] for i in ids)


def _diag_infos() -> list[dict]:
    def info(score, r_sim, sim, decoy_r, decoy_s):
        return {**dict.fromkeys(REWARD_KEYS, 0.0), "score": score, "semantic_reward": r_sim,
                "semantic_similarity": sim, "language_reward": 1.0, "decoy_semantic_reward": decoy_r,
                "decoy_similarity": decoy_s}

    return [info(1.3, 0.2, 0.6, 0.2, 0.6), info(1.3, 0.2, 0.6, 0.1, 0.5),
            info(1.0, 0.0, 0.1, 0.0, 0.2), info(1.4, 0.4, 0.8, 0.1, 0.3)]


def test_v1_trainer_metrics_get_the_step_diagnostics():
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    infos = _diag_infos()
    responses = [[1, 1, 1, 1, 1], [4, 1, 1, 1, 1, 1], [2, 3], [2, 5]]  # the second has a reasoning block
    keys = ["p_0_0", "p_1_0", "q_0_0", "q_1_0", "pad_0_0"]
    store = {k: {"uid": k.split("_")[0], "responses": torch.tensor(r), "extra_fields": {"reward_extra_info": i}}
             for k, r, i in zip(keys, responses, infos, strict=False)}
    store["pad_0_0"] = {"uid": "pad", "responses": torch.tensor([5]),
                        "extra_fields": {"reward_extra_info": {**infos[0], "score": 99.0}}}
    tags = [{"status": "success"}] * 4 + [{"is_padding": True}]

    def kv_batch_get(keys, partition_id, select_fields):
        return list_of_dict_to_tensordict([{f: store[k][f] for f in select_fields} for k in keys])

    class Trainer:
        tokenizer = _Tokenizer()
        config = {"reward": {"reward_kwargs": {}}}

        def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
            metrics["training/global_step"] = global_steps

    module = types.SimpleNamespace(__name__="fake_v1", PPOTrainer=Trainer,
                                   tq=types.SimpleNamespace(kv_batch_get=kv_batch_get))
    hook.patch_v1_trainer(module)
    metrics: dict = {}
    Trainer()._compute_metrics(KVBatchMeta(keys=keys, tags=tags, partition_id="train"), metrics, {}, 1, 0)
    p = hook.DIAGNOSTIC_PREFIX
    assert metrics[f"{p}specificity_r_sim"] == pytest.approx(0.8 / 4 - 0.4 / 4)
    assert metrics[f"{p}specificity_similarity"] == pytest.approx(2.1 / 4 - 1.6 / 4)
    assert metrics[f"{p}r_sim_own"] == pytest.approx(0.2) and metrics[f"{p}r_sim_decoy"] == pytest.approx(0.1)
    assert metrics[f"{p}zero_spread_groups"] == 0.5  # p: 1.3 and 1.3; the padding sample (99) is left out
    assert metrics[f"{p}tau_floor_share"] == 0.25
    # outputs as the reward reads them: ཀ x5 twice (the reasoning block cut off), ཁ ག, ཁ ང
    assert metrics[f"{p}distinct_output_share"] == 3 / 4
    assert metrics[f"{p}distinct_1_step"] == 4 / 14
    assert metrics[f"{p}distinct_2_group"] == pytest.approx((1 / 8 + 2 / 2) / 2)
    assert metrics[f"{p}repeated_4gram_ratio"] == pytest.approx(0.25)
    assert metrics[hook.DIAGNOSTIC_TIMING] >= 0.0
    assert metrics["semantic_reward/score/mean"] == pytest.approx(5.0 / 4)  # the component means are still there


def test_legacy_trainer_metrics_get_the_step_diagnostics_without_text(monkeypatch):
    import verl.trainer.ppo.ray_trainer as legacy

    infos = _diag_infos()
    monkeypatch.setattr(legacy, "compute_data_metrics", legacy.compute_data_metrics)
    hook.patch_legacy_trainer(legacy)
    batch = _rollout_batch(infos)
    batch.non_tensor_batch["uid"] = np.array(["p", "p", "q", "q"], dtype=object)
    for key in ("decoy_semantic_reward", "decoy_similarity"):
        batch.non_tensor_batch[key] = np.array([i[key] for i in infos])
    metrics = legacy.compute_data_metrics(batch=batch, use_critic=False)
    p = hook.DIAGNOSTIC_PREFIX
    assert metrics[f"{p}specificity_r_sim"] == pytest.approx(0.1)
    assert metrics[f"{p}zero_spread_groups"] == 0.5 and metrics[f"{p}tau_floor_share"] == 0.25
    assert not any(k.startswith(f"{p}distinct") for k in metrics)  # no tokenizer in this trainer: no text metrics


def test_another_rewards_batch_gets_no_diagnostics():
    assert hook.diagnostic_metrics([{"score": 1.0, "acc": 1.0}] * 2, ["a", "a"], ["x", "y"]) == {}
    assert hook.legacy_diagnostics({"score": [1.0], "uid": ["a"]}) == {}


def test_reward_steps_keep_the_diagnostics_and_drop_what_was_not_measured():
    from semantic_reward.experiment.metrics import DIAGNOSTIC_PREFIX, parse_step_line, reward_steps

    assert DIAGNOSTIC_PREFIX == hook.DIAGNOSTIC_PREFIX
    line = ("step:2 - critic/score/mean:1.2 - semantic_reward/semantic_reward/mean:0.1 - "
            f"{hook.DIAGNOSTIC_PREFIX}specificity_r_sim:0.05 - {hook.DIAGNOSTIC_PREFIX}distinct_2_group:nan - "
            f"{hook.DIAGNOSTIC_TIMING}:0.003 - timing_s/gen:4.0")
    step, metrics = parse_step_line(line)
    assert reward_steps({step: metrics}) == [{
        "step": 2, "reward_mean": 1.2, "semantic_reward/semantic_reward/mean": 0.1,
        f"{hook.DIAGNOSTIC_PREFIX}specificity_r_sim": 0.05, "diagnostics_seconds": 0.003}]


def test_a_failing_diagnostic_warns_once_and_keeps_the_means(results, caplog):
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    store = [{"uid": "u", "responses": torch.tensor([1]), "extra_fields": {"reward_extra_info": r}} for r in results]

    class Broken:
        def decode(self, ids, skip_special_tokens=True):
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "bad")

    def kv_batch_get(keys, partition_id, select_fields):
        return list_of_dict_to_tensordict([{f: row[f] for f in select_fields} for row in store])

    batch = types.SimpleNamespace(keys=[f"k{i}" for i in range(len(store))], tags=[{}] * len(store), partition_id="t")
    state: dict = {}
    for _ in range(2):
        metrics = hook.v1_step_metrics(batch, kv_batch_get, Broken(), None, state)
        for key, value in _expected(results).items():
            assert metrics[key] == pytest.approx(value, abs=1e-9), key
        assert not any(k.startswith(hook.DIAGNOSTIC_PREFIX) for k in metrics)
    assert sum("the step diagnostics are skipped" in r.getMessage() for r in caplog.records) == 1
