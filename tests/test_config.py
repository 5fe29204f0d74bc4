"""Bad settings fail at load, naming the setting."""

import pytest

from semantic_reward.config import ConfigError, SemanticRewardConfig


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"language": "klingon"}, "'language'"),
        ({"tau": 1.0}, "'tau'"),
        ({"tau": -0.1}, "'tau'"),
        ({"tau": "high"}, "'tau'"),
        ({"semantic_weight": -1.0}, "'semantic_weight'"),
        ({"language_weight": -0.5}, "'language_weight'"),
        ({"length_penalty": {"weight": -0.2}}, "'length_penalty.weight'"),
        ({"length_penalty": {"start": 5.0, "full": 2.5}}, "'length_penalty.full'"),
        ({"encoder": {"model": "/no/such/encoder/dir"}}, "'encoder.model'"),
        ({"encoder": {"dtype": "int3"}}, "'encoder.dtype'"),
        ({"encoder": {"batch_size": 0}}, "'encoder.batch_size'"),
        ({"service": {"backend": "grpc"}}, "'service.backend'"),
        ({"service": {"num_gpus": -1}}, "'service.num_gpus'"),
        ({"service": {"request_timeout_s": float("inf")}}, "'service.request_timeout_s'"),
        ({"service": {"request_timeout_s": float("nan")}}, "'service.request_timeout_s'"),
        ({"service": {"request_timeout_s": 0}}, "'service.request_timeout_s'"),
        ({"service": {"max_wait_ms": -1}}, "'service.max_wait_ms'"),
        ({"service": {"max_wait_ms": 10001}}, "'service.max_wait_ms'"),
        ({"mode": "telepathy"}, "'mode'"),
        ({"combine": "multiplicative"}, "'combine'"),
        ({"purity": 0.0}, "'purity'"),
        ({"languages": {"xx": ["NotAScript"]}}, "'languages'"),
    ],
)
def test_bad_setting_is_named(settings, named):
    with pytest.raises(ConfigError, match=named):
        SemanticRewardConfig.from_mapping(settings)


def test_misspelt_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"'tua' is unknown; did you mean 'tau'"):
        SemanticRewardConfig.from_mapping({"tua": 0.3})
    with pytest.raises(ConfigError, match=r"'encoder.modle' is unknown; did you mean 'encoder.model'"):
        SemanticRewardConfig.from_mapping({"encoder": {"modle": "x"}})


def test_defaults_are_the_paper_and_omegaconf_is_accepted(minilm_path):
    from omegaconf import OmegaConf

    cfg = SemanticRewardConfig.from_mapping(OmegaConf.create({"encoder": {"model": minilm_path}}))
    assert cfg.encoder.model == minilm_path
    assert (cfg.semantic_weight, cfg.language_weight, cfg.combine) == (1.5, 1.0, "additive")
    assert cfg.length_penalty.weight == 0.0 and cfg.repetition_penalty.weight == 0.0
    assert cfg.reward_range == (0.0, 2.5)
    gated = SemanticRewardConfig(combine="gated", semantic_weight=1.0)
    assert gated.reward_range == (0.0, 1.0)
    assert SemanticRewardConfig.from_mapping(cfg.to_dict()) == cfg


def test_service_bounds_are_inclusive():
    cfg = SemanticRewardConfig.from_mapping({"service": {"max_wait_ms": 10000, "request_timeout_s": 0.001}})
    assert (cfg.service.max_wait_ms, cfg.service.request_timeout_s) == (10000.0, 0.001)
    assert SemanticRewardConfig.from_mapping({"service": {"max_wait_ms": 0}}).service.max_wait_ms == 0.0


def test_packaged_model_alias_is_not_a_product_setting():
    import semantic_reward.config as config

    assert not hasattr(config, "PACKAGED_MINILM")
    assert config.resolve_model_path("packaged-minilm") == "packaged-minilm"  # a hub id now, not an alias
