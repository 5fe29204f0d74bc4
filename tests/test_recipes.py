"""Every recipe composes against the installed verl config tree and passes verl's checks and ours."""

import shutil
from pathlib import Path

import pytest

from semantic_reward.recipe_check import RecipeError, check_recipe, compose_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*/config.yaml"))


def test_there_are_grpo_sft_and_ablation_recipes():
    names = {p.parent.name for p in RECIPES}
    assert {"grpo_semantic_zh_bo", "grpo_semantic_bo_zh", "grpo_semantic_headline", "sft_cold_start",
            "sft_strong", "ablation_lexical_chrf", "ablation_no_language", "ablation_source_grounded",
            "recover_sft", "fewshot_headline_from_mt"} <= names
    assert all((p.parent / "run.sh").exists() for p in RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.parent.name)
def test_recipe_composes_and_passes_checks(recipe):
    cfg = check_recipe(recipe)
    if "actor_rollout_ref" in cfg:
        assert cfg.algorithm.adv_estimator == "grpo"
        assert cfg.reward.reward_manager.name == "semantic"
    else:
        assert str(cfg.data.train_files).endswith(".parquet")


def test_grpo_recipe_carries_the_papers_settings():
    cfg = compose_recipe(ROOT / "recipes" / "grpo_semantic_zh_bo" / "config.yaml")
    rollout, model = cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.model
    assert (rollout.n, rollout.temperature, rollout.top_p) == (8, 0.8, 0.9)
    assert (model.lora_rank, model.lora_alpha) == (64, 128)
    assert cfg.actor_rollout_ref.actor.optim.lr == 5e-7 and cfg.trainer.total_epochs == 1
    assert cfg.actor_rollout_ref.actor.use_kl_loss is True
    kw = cfg.reward.reward_kwargs
    assert (kw.semantic_weight, kw.language_weight) == (1.5, 1.0)
    sft = compose_recipe(ROOT / "recipes" / "sft_cold_start" / "config.yaml")
    assert (sft.optim.lr, sft.data.train_batch_size, sft.trainer.total_epochs) == (2e-5, 32, 2)
    assert sft.optim.lr_scheduler_type == "cosine"


def _copy_with(tmp_path, recipe, old, new):
    folder = tmp_path / recipe
    shutil.copytree(ROOT / "recipes" / recipe, folder)
    text = (folder / "config.yaml").read_text()
    assert old in text
    (folder / "config.yaml").write_text(text.replace(old, new, 1))
    return folder / "config.yaml"


def test_misspelt_verl_key_fails(tmp_path):
    bad = _copy_with(tmp_path, "grpo_semantic_zh_bo", "    temperature: 0.8", "    temprature: 0.8")
    with pytest.raises(RecipeError, match=r"'actor_rollout_ref.rollout.temprature'.*did you mean "
                                          r"'actor_rollout_ref.rollout.temperature'"):
        check_recipe(bad)
    bad_sft = _copy_with(tmp_path, "sft_cold_start", "  lr_scheduler_type: cosine", "  lr_sheduler_type: cosine")
    with pytest.raises(RecipeError, match="lr_sheduler_type"):
        check_recipe(bad_sft)


def test_misspelt_reward_setting_fails(tmp_path):
    from semantic_reward.config import ConfigError

    bad = _copy_with(tmp_path, "grpo_semantic_zh_bo", "    tau: 0.5", "    tua: 0.5")
    with pytest.raises(ConfigError, match="'tua' is unknown; did you mean 'tau'"):
        check_recipe(bad)
