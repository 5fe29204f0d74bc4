"""Every recipe composes with every scale profile against the installed verl config tree and passes
verl's checks and ours; the recipes differ only where the science differs."""

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from semantic_reward.recipe_check import RecipeError, check_profiles, check_recipe, compose_recipe, recipe_kind

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
PROFILES = sorted(p.stem for p in (ROOT / "recipes" / "profile").glob("*.yaml"))


def test_there_are_grpo_sft_and_ablation_recipes_and_two_profiles():
    names = {p.stem for p in RECIPES}
    assert {"grpo_semantic_zh_bo", "grpo_semantic_bo_zh", "grpo_semantic_headline", "sft_cold_start",
            "sft_strong", "ablation_lexical_chrf", "ablation_no_language", "ablation_source_grounded",
            "recover_sft", "fewshot_headline_from_mt", "sft_cold_start_headline", "sft_strong_headline"} <= names
    assert {"cpu-tiny", "paper"} <= set(PROFILES)
    assert check_profiles() == []


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_composes_with_the_profile_and_passes_checks(recipe, profile):
    cfg = check_recipe(recipe, profile)
    p = OmegaConf.load(ROOT / "recipes" / "profile" / f"{profile}.yaml")
    assert cfg.trainer.device == p.device and cfg.trainer.n_gpus_per_node == p.n_gpus_per_node
    if recipe_kind(recipe) == "grpo":
        model = cfg.actor_rollout_ref.model
        assert cfg.algorithm.adv_estimator == "grpo" and cfg.reward.reward_manager.name == "semantic"
        assert (model.path, model.lora_rank, model.lora_alpha) == (p.model, p.lora.rank, p.lora.alpha)
        assert cfg.actor_rollout_ref.rollout.name == p.grpo.rollout_engine
        assert cfg.trainer.use_v1 is True
        assert cfg.data.apply_chat_template_kwargs.enable_thinking is False
        assert cfg.data.train_batch_size == p.grpo.train_batch_size
    else:
        assert str(cfg.data.train_files).endswith(".parquet")
        assert (cfg.model.path, cfg.model.lora_rank, cfg.model.lora_alpha) == (p.model, p.lora.rank, p.lora.alpha)
        # the RL rollout's prompt, token for token (tests/test_one_prompt.py); verl's whole-rendering check on
        assert cfg.data.custom_cls.name == "RolloutPromptSFTDataset" and cfg.data.ignore_input_ids_mismatch is False
        assert cfg.data.apply_chat_template_kwargs.enable_thinking is False
        assert cfg.data.enable_thinking_default is False  # verl's default, the string "none", reads as on
        assert cfg.engine.mixed_precision.param_dtype == p.engine.param_dtype
        assert "hf_model" in cfg.checkpoint.save_contents
        assert cfg.data.train_batch_size == p.sft.train_batch_size


@pytest.mark.parametrize("recipe", ["grpo_semantic_zh_bo", "sft_cold_start"])
def test_the_same_recipe_differs_between_profiles_only_through_the_profile(recipe):
    """Composed at 'paper' with the profile node swapped for cpu-tiny's = composed at 'cpu-tiny': nothing
    outside recipes/profile/ differs between the CPU and the GPU run."""
    cpu = compose_recipe(recipe, "cpu-tiny")
    swapped = compose_recipe(recipe, "paper")
    assert swapped.profile != cpu.profile
    swapped.profile = cpu.profile
    as_cpu = OmegaConf.to_container(swapped, resolve=True)
    assert as_cpu == OmegaConf.to_container(cpu, resolve=True)
    gpu = OmegaConf.to_container(compose_recipe(recipe, "paper"), resolve=True)
    assert gpu != as_cpu  # and the profiles do change the run


def test_grpo_recipe_carries_the_papers_settings_at_the_paper_profile():
    cfg = compose_recipe("grpo_semantic_zh_bo", "paper")
    OmegaConf.resolve(cfg)
    rollout, model = cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.model
    assert (rollout.n, rollout.temperature, rollout.top_p) == (8, 0.8, 0.9)
    assert (model.lora_rank, model.lora_alpha) == (64, 128)
    assert cfg.actor_rollout_ref.actor.optim.lr == 5e-7 and cfg.trainer.total_epochs == 1
    assert cfg.actor_rollout_ref.actor.use_kl_loss is True
    kw = cfg.reward.reward_kwargs
    assert (kw.semantic_weight, kw.language_weight) == (1.5, 1.0)
    sft = compose_recipe("sft_cold_start", "paper")
    OmegaConf.resolve(sft)
    assert (sft.optim.lr, sft.data.train_batch_size, sft.trainer.total_epochs) == (2e-5, 32, 2)
    assert sft.optim.lr_scheduler_type == "cosine"


def _copy_with(tmp_path, recipe, old, new, file=None):
    folder = tmp_path / "recipes"
    shutil.copytree(ROOT / "recipes", folder)
    path = folder / (file or f"{recipe}.yaml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return folder / f"{recipe}.yaml"


def test_misspelt_verl_key_fails_in_a_recipe_or_its_base(tmp_path):
    bad = _copy_with(tmp_path, "grpo_semantic_zh_bo", "    temperature: 0.8", "    temprature: 0.8", "base/grpo.yaml")
    with pytest.raises(RecipeError, match=r"'actor_rollout_ref.rollout.temprature'.*did you mean "
                                          r"'actor_rollout_ref.rollout.temperature'"):
        check_recipe(bad)
    bad_sft = _copy_with(tmp_path / "b", "sft_cold_start", "trainer:\n", "trainer:\n  total_epoch: 3\n")
    with pytest.raises(RecipeError, match="total_epoch"):
        check_recipe(bad_sft)


def test_misspelt_profile_key_fails(tmp_path):
    folder = tmp_path / "recipes"
    shutil.copytree(ROOT / "recipes", folder)
    path = folder / "profile" / "cpu-tiny.yaml"
    path.write_text(path.read_text().replace("  rank: 16", "  rnk: 16"))
    problems = check_profiles(folder)
    assert any("'lora.rnk' is not a profile key (did you mean 'lora.rank'?)" in p for p in problems)
    assert any("lacks 'lora.rank'" in p for p in problems)


def test_misspelt_reward_setting_fails(tmp_path):
    from semantic_reward.config import ConfigError

    bad = _copy_with(tmp_path, "grpo_semantic_zh_bo", "    tau: 0.5", "    tua: 0.5", "base/grpo.yaml")
    with pytest.raises(ConfigError, match="'tua' is unknown; did you mean 'tau'"):
        check_recipe(bad)


def test_command_line_overrides_are_checked_like_the_recipe():
    with pytest.raises(RecipeError, match="train_batch_size 4 x actor_rollout_ref.rollout.n 16 = 64 rollouts"):
        # 4 prompts x 16 rollouts cannot be spread over 3 GPUs
        check_recipe("grpo_semantic_zh_bo", "cpu-tiny", ["profile.n_gpus_per_node=3"])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (["+reward.custom_reward_function.reward_kwargs.tua=0.5"], "'tua' is unknown; did you mean 'tau'"),
        (["+reward.custom_reward_function.reward_kwargs.encoder.device=cuda:abc"], "'encoder.device'"),
        (["+reward.custom_reward_function.reward_kwargs.encoder.model=./no/such/encoder"], "'encoder.model'"),
    ],
)
def test_compute_score_reward_kwargs_are_checked_before_the_run(kwargs, needle):
    """verl binds these only at the first reward call: recipe_check is where a bad one must fail."""
    from semantic_reward.config import ConfigError

    use_function = ["reward.custom_reward_function.path=pkg://semantic_reward.verl_adapter.compute_score",
                    "reward.reward_manager.name=naive"]
    with pytest.raises(ConfigError, match=needle) as info:
        check_recipe("grpo_semantic_zh_bo", "cpu-tiny", [*use_function, *kwargs])
    assert "reward.custom_reward_function.reward_kwargs" in str(info.value)
    # the documented key itself is accepted, and good settings pass
    check_recipe("grpo_semantic_zh_bo", "cpu-tiny",
                 [*use_function, "+reward.custom_reward_function.reward_kwargs.tau=0.6",
                  "+reward.custom_reward_function.reward_kwargs.similarity.embedding=0",
                  "+reward.custom_reward_function.reward_kwargs.similarity.chrf=1"])


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["profile.encoder.dtype=float16"], "float16 with the encoder on CPU"),
        (["profile.encoder.device=auto"], "device auto with service.num_gpus 0"),
    ],
)
def test_an_encoder_that_would_crawl_on_the_cpu_fails_at_the_check(overrides, needle):
    """fp16 matmuls on a CPU, or an 'auto' device in an actor that holds no GPU: refused before the run."""
    with pytest.raises(RecipeError, match=needle):
        check_recipe("grpo_semantic_zh_bo", "paper", overrides)


def test_the_paper_profile_puts_the_encoder_on_the_driver_cpus_in_bf16_with_its_threads():
    cfg = check_recipe("grpo_semantic_zh_bo", "paper")
    kwargs = cfg.reward.reward_kwargs
    assert (kwargs.encoder.device, kwargs.encoder.dtype) == ("cpu", "bfloat16")
    assert (kwargs.service.num_gpus, kwargs.service.num_cpus) == (0, 16)
    # a GPU kept for the encoder moves it there
    cfg = check_recipe("grpo_semantic_zh_bo", "paper", ["profile.encoder.num_gpus=1", "profile.encoder.device=cuda",
                                                         "profile.n_gpus_per_node=8"])
    assert (cfg.reward.reward_kwargs.encoder.device, cfg.reward.reward_kwargs.service.num_gpus) == ("cuda", 1)


def test_a_prompt_cap_below_the_batch_fails_at_the_check():
    with pytest.raises(RecipeError, match=r"data.train_max_samples 2 \(the profile's grpo.train_max_samples\) is below "
                                          r"data.train_batch_size 4"):
        check_recipe("grpo_semantic_zh_bo", "cpu-tiny", ["profile.grpo.train_max_samples=2"])
    for ok in ("-1", "4", "16"):
        assert check_recipe("grpo_semantic_zh_bo", "cpu-tiny", [f"profile.grpo.train_max_samples={ok}"])


def test_a_warmup_as_long_as_the_run_fails_at_the_check():
    tiny, paper = check_recipe("grpo_semantic_zh_bo", "cpu-tiny"), check_recipe("grpo_semantic_zh_bo", "paper")
    # the profile's warm-up and KL weight, through the base recipe
    assert (tiny.actor_rollout_ref.actor.optim.lr_warmup_steps, tiny.actor_rollout_ref.actor.kl_loss_coef) == (10, 0.1)
    assert (paper.actor_rollout_ref.actor.optim.lr_warmup_steps, paper.actor_rollout_ref.actor.kl_loss_coef) == (0, 0.001)
    with pytest.raises(RecipeError, match=r"lr_warmup_steps 30 \(the profile's grpo.lr_warmup_steps\) is not below "
                                          r"trainer.total_training_steps 24"):
        check_recipe("grpo_semantic_zh_bo", "cpu-tiny", ["profile.grpo.lr_warmup_steps=30",
                                                         "profile.grpo.total_training_steps=24"])
