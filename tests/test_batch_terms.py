"""The batch-median length penalty applied to one V1 training step in TransferQueue (issue 12, item 5).

TransferQueue is replaced by a dict store with verl's own TensorDict conversion
(``tensordict_utils.get_tensordict``) on the way in, as the trainer writes it.
"""

import types

import pytest
import torch
from omegaconf import OmegaConf

from semantic_reward.config import ConfigError, SemanticRewardConfig
from semantic_reward.reward_math import REWARD_KEYS
from semantic_reward.verl_adapter import batch_terms

LP = {"length_penalty": {"weight": 0.2, "relative_to": "batch_median"}}


class FakeTQ:
    def __init__(self, rows):
        self.store = rows  # key -> {"rm_scores": 1-D tensor, "extra_fields": dict}
        self.puts = 0

    def kv_batch_get(self, keys, partition_id, select_fields):
        assert partition_id == "train"
        return {"rm_scores": torch.nested.as_nested_tensor([self.store[k]["rm_scores"] for k in keys],
                                                           layout=torch.jagged),
                "extra_fields": [self.store[k]["extra_fields"] for k in keys]}

    def kv_batch_put(self, keys, partition_id, fields):
        self.puts += 1
        scores, extra = fields["rm_scores"].unbind(), list(fields["extra_fields"])
        for key, score, e in zip(keys, scores, extra, strict=True):
            self.store[key] = {"rm_scores": score, "extra_fields": e}


def info(units, r_sim=0.5, r_lang=1.0):
    row = dict.fromkeys(REWARD_KEYS, 0.0)
    row.update(length_units=float(units), semantic_reward=r_sim, language_reward=r_lang, score=1.5 * r_sim + r_lang)
    return row


def step(lengths, padding=()):
    rows, tags = {}, []
    for i, n in enumerate(lengths):
        score = torch.zeros(max(int(n), 1))
        score[-1] = 1.75
        rows[f"k{i}"] = {"rm_scores": score, "extra_fields": {"reward_extra_info": info(n), "other": i}}
        tags.append({"is_padding": i in padding})
    batch = types.SimpleNamespace(keys=list(rows), tags=tags, partition_id="train")
    return batch, FakeTQ(rows)


def test_one_step_is_rescored_against_its_own_median():
    settings = SemanticRewardConfig.from_mapping(LP)
    batch, tq = step([10, 20, 30, 100])
    metrics = batch_terms.apply_to_step(batch, settings, tq)
    assert metrics == {"semantic_reward/batch_median_length": 25.0}
    infos = [tq.store[k]["extra_fields"]["reward_extra_info"] for k in batch.keys]
    assert [i["length_penalty"] for i in infos] == pytest.approx([0.0, 0.0, 0.0, 0.6])  # 100/25 = 4 on 2.5..5
    assert [float(tq.store[k]["rm_scores"][-1]) for k in batch.keys] == pytest.approx([1.75, 1.75, 1.75, 1.63])
    assert float(tq.store["k3"]["rm_scores"][:-1].abs().sum()) == 0.0  # only the last token carries the score
    assert tq.store["k2"]["extra_fields"]["other"] == 2  # the rest of extra_fields is kept


def test_padding_copies_do_not_move_the_median():
    settings = SemanticRewardConfig.from_mapping(LP)
    batch, tq = step([10, 20, 30, 100, 100, 100], padding=(4, 5))
    assert batch_terms.apply_to_step(batch, settings, tq) == {"semantic_reward/batch_median_length": 25.0}


def test_another_reward_is_left_alone():
    settings = SemanticRewardConfig.from_mapping(LP)
    batch, tq = step([10, 100])
    tq.store["k0"]["extra_fields"]["reward_extra_info"] = {"acc": 1.0}
    assert batch_terms.apply_to_step(batch, settings, tq) == {} and tq.puts == 0


def test_settings_are_read_for_the_manager_and_for_compute_score():
    manager = OmegaConf.create({"reward": {"reward_manager": {"name": "semantic"}, "reward_kwargs": LP,
                                           "custom_reward_function": {"path": None}}})
    assert batch_terms.step_settings(manager).length_penalty.weight == 0.2
    function = OmegaConf.create({"reward": {"reward_manager": {"name": "naive"}, "custom_reward_function": {
        "path": "pkg://semantic_reward.verl_adapter.compute_score", "reward_kwargs": LP}}})
    assert batch_terms.step_settings(function) is not None
    plain = OmegaConf.create({"reward": {"reward_manager": {"name": "semantic"}, "reward_kwargs": {},
                                         "custom_reward_function": {"path": None}}})
    assert batch_terms.step_settings(plain) is None


def test_the_patch_rescores_before_the_advantage():
    calls = []
    batch, tq = step([10, 100])

    class PPOTrainer:
        config = OmegaConf.create({"reward": {"reward_manager": {"name": "semantic"}, "reward_kwargs": LP,
                                              "custom_reward_function": {"path": None}}})

        def _compute_advantage(self, batch, metrics):
            calls.append(float(tq.store["k1"]["rm_scores"][-1]))
            return batch

    module = types.SimpleNamespace(__name__="fake_trainer_base", PPOTrainer=PPOTrainer, tq=tq)
    batch_terms.patch_v1_trainer(module)
    batch_terms.patch_v1_trainer(module)  # idempotent
    metrics = {}
    PPOTrainer()._compute_advantage(batch, metrics)
    # median 55: 100/55 < 2.5 -> no penalty; the original saw the rescored store once
    assert calls == pytest.approx([1.75]) and metrics == {"semantic_reward/batch_median_length": 55.0}
    assert tq.puts == 1


def test_legacy_trainer_with_batch_median_is_refused():
    from semantic_reward.verl_adapter.manager import _check_batch_terms

    settings = SemanticRewardConfig.from_mapping(LP)
    with pytest.raises(ConfigError, match="use_v1"):
        _check_batch_terms(settings, OmegaConf.create({"trainer": {"use_v1": False}}))
    _check_batch_terms(settings, OmegaConf.create({"trainer": {"use_v1": True}}))


def test_both_hooks_wrap_verls_v1_trainer_when_it_is_imported():
    """The plugin import (manager.py) installs the metrics hook and this one; both reach verl's real module."""
    import subprocess
    import sys

    code = ("import semantic_reward.verl_adapter.manager\n"
            "import verl.trainer.ppo.v1.trainer_base as m\n"
            "print(getattr(m.PPOTrainer._compute_advantage, '_semantic_reward_batch_terms', False),"
            " getattr(m.PPOTrainer._compute_metrics, '_semantic_reward_metrics', False))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split()[-2:] == ["True", "True"], out.stderr[-2000:]
