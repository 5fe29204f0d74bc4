"""The one settings system: unknown keys, types, ranges and choices fail naming the dotted setting,
and the command lines are generated from the dataclasses (one default per setting)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import typing

import pytest
from omegaconf import OmegaConf

from data_tools import config as data_config
from data_tools.cli import config_from_args
from data_tools.cli import parser as data_parser
from data_tools.config import BuildConfig, FilterConfig, NormalizeConfig, PromptConfig, SplitConfig
from semantic_reward import config as reward_config
from semantic_reward.config import EncoderConfig, Mode, SemanticRewardConfig
from semantic_reward.settings import (ConfigError, Settings, add_flags, build_dataclass, deep_merge, flag_values,
                                     setting)

PATHS = {"input": {"paths": ["corpus.jsonl"]}}


def build(settings: dict) -> BuildConfig:
    return BuildConfig.from_mapping({**PATHS, **settings})


def test_one_config_error_class():
    assert data_config.ConfigError is reward_config.ConfigError is ConfigError
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SemanticRewardConfig.from_mapping({"service": {"request_timout_s": 1}}),
         "'service.request_timout_s' is unknown; did you mean 'service.request_timeout_s'?"),
        (lambda: build({"filters": {"max_lenght_ratio": 2}}),
         "'filters.max_lenght_ratio' is unknown; did you mean 'filters.max_length_ratio'?"),
        (lambda: build({"splitz": {}}), "'splitz' is unknown; did you mean 'splits'?"),
        (lambda: build({"input": {"paths": ["x"], "formt": "csv"}}),
         "'input.formt' is unknown; did you mean 'input.format'?"),
    ],
)
def test_unknown_key_suggests_the_dotted_key(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)
    assert info.value.key == message.split("'")[1]


def test_verl_node_prefix_is_part_of_the_name():
    from data_tools.verl_dataset import build_config_from_verl

    node = OmegaConf.create({"raw_corpus": {"task": "mt", "splits": {"sed": 3}}})
    unknown = r"'raw_corpus\.splits\.sed' is unknown; did you mean 'raw_corpus\.splits\.seed'"
    with pytest.raises(ConfigError, match=unknown):
        build_config_from_verl(["x.jsonl"], node)
    node = OmegaConf.create({"raw_corpus": {"splits": {"test": 2.0}}})
    with pytest.raises(ConfigError, match=r"'raw_corpus\.splits\.test': must be a finite number in \[0, 1\)"):
        build_config_from_verl(["x.jsonl"], node)


@pytest.mark.parametrize(
    ("make", "key", "detail"),
    [
        (lambda: SemanticRewardConfig.from_mapping({"encoder": {"max_length": "long"}}), "encoder.max_length",
         "could not be converted to Integer"),
        (lambda: SemanticRewardConfig.from_mapping({"encoder": {"batch_size": True}}), "encoder.batch_size",
         "could not be converted to Integer"),
        (lambda: SemanticRewardConfig.from_mapping({"tau": [0.3]}), "tau", ""),
        (lambda: SemanticRewardConfig.from_mapping({"encoder": 5}), "encoder", "expected a mapping, got int"),
        (lambda: build({"splits": {"seed": "abc"}}), "splits.seed", "could not be converted to Integer"),
        (lambda: build({"normalize": {"tsheg": "maybe"}}), "normalize.tsheg", "not a valid bool"),
        (lambda: EncoderConfig(max_length="128"), "encoder.max_length", "must be an integer, got '128'"),
    ],
)
def test_wrong_type_is_named(make, key, detail):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
    assert f"'{key}'" in str(info.value) and detail in str(info.value)


@pytest.mark.parametrize(
    ("make", "key", "detail"),
    [
        (lambda: SemanticRewardConfig.from_mapping({"encoder": {"max_length": 0}}), "encoder.max_length",
         "must be an integer in [1, inf), got 0"),
        (lambda: SemanticRewardConfig.from_mapping(OmegaConf.create("service: {request_timeout_s: .inf}")),
         "service.request_timeout_s", "got inf"),
        (lambda: SemanticRewardConfig.from_mapping(OmegaConf.create("service: {request_timeout_s: .nan}")),
         "service.request_timeout_s", "got nan"),
        (lambda: SemanticRewardConfig.from_mapping({"service": {"max_wait_ms": 10000.5}}), "service.max_wait_ms",
         "[0, 10000]"),
        (lambda: SemanticRewardConfig.from_mapping({"repetition_penalty": {"threshold": 1}}),
         "repetition_penalty.threshold", "[0, 1)"),
        (lambda: build({"filters": {"min_script_share": 1.5}}), "filters.min_script_share", "[0, 1]"),
        (lambda: build({"filters": {"max_length_ratio": 0.5}}), "filters.max_length_ratio", "[1, inf)"),
        (lambda: build({"splits": {"cold_start": -3}}), "splits.cold_start", "row count"),
        (lambda: build({"splits": {"test": 0.6, "dev": 0.5}}), "splits.dev", "leave rows for training"),
        (lambda: EncoderConfig(cache_size=-1), "encoder.cache_size", "[0, inf)"),
    ],
)
def test_out_of_range_is_named(make, key, detail):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
    assert detail in str(info.value)


@pytest.mark.parametrize(
    ("make", "key", "choices"),
    [
        (lambda: SemanticRewardConfig.from_mapping({"mode": "telepathy"}), "mode", "reference, source, hybrid"),
        (lambda: SemanticRewardConfig.from_mapping({"encoder": {"dtype": "int3"}}), "encoder.dtype", "float32"),
        (lambda: build({"input": {"paths": ["x"], "format": "xml"}}), "input.format", "aligned"),
        (lambda: build({"task": "poetry"}), "task", "mt, headline"),
        (lambda: build({"prompts": {"instruction_language": "fr"}}), "prompts.instruction_language", "zh, en, bo"),
        (lambda: SemanticRewardConfig(combine="multiplicative"), "combine", "additive"),
    ],
)
def test_closed_choices_list_their_values(make, key, choices):
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key
    assert choices in str(info.value)


def test_choices_behave_as_strings():
    cfg = SemanticRewardConfig.from_mapping({"mode": "hybrid", "combine": "gated"})
    assert cfg.mode is Mode.hybrid and cfg.mode == "hybrid" and f"{cfg.mode}" == "hybrid"
    assert {"hybrid": 1}[cfg.mode] == 1
    assert json.loads(cfg.cache_key())["mode"] == "hybrid"
    assert SemanticRewardConfig(combine="gated").combine == "gated"  # code may pass plain strings too
    assert pickle.loads(pickle.dumps(cfg)) == cfg  # configs travel to Ray actors
    assert SemanticRewardConfig.from_mapping(cfg.to_dict()) == cfg
    yaml_node = OmegaConf.create("mode: source\nencoder: {dtype: bfloat16}")
    assert SemanticRewardConfig.from_mapping(yaml_node).encoder.dtype == "bfloat16"


def test_other_helpers_plain_dataclasses_build():
    @dataclasses.dataclass(frozen=True)
    class Plain:
        rate: float = 0.5
        name: str = "x"

        def __post_init__(self):
            if not 0 <= self.rate <= 1:
                raise ConfigError.at("plain.rate", f"must be in [0, 1], got {self.rate}")

    assert build_dataclass(Plain, {"rate": "0.25"}) == Plain(rate=0.25)
    with pytest.raises(ConfigError, match="'plain.rate': must be in"):
        build_dataclass(Plain, {"rate": 3})
    with pytest.raises(ConfigError, match="'naem' is unknown; did you mean 'name'"):
        build_dataclass(Plain, {"naem": "y"})
    with pytest.raises(ConfigError, match="'rate'.*could not be converted to Float"):
        build_dataclass(Plain, {"rate": "fast"})


# -- command lines --------------------------------------------------------------------------------


def _leaf_keys(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def _subparser(task: str) -> argparse.ArgumentParser:
    ap = data_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[task]


@pytest.mark.parametrize("task", ["mt", "headline"])
def test_every_build_setting_has_a_flag_without_a_default_of_its_own(task):
    p = _subparser(task)
    generated = {a.dest.split(":", 1)[1]: a for a in p._actions if a.dest.startswith("build:")}
    assert set(generated) == set(_leaf_keys(BuildConfig)) - {"task"}
    assert all(a.default is argparse.SUPPRESS for a in generated.values())  # defaults live in the dataclasses
    args = data_parser().parse_args([task, "--input", "c.jsonl", "--out", "o"])
    assert flag_values(args, "build") == {"input": {"paths": ["c.jsonl"]}}


def test_cli_defaults_are_the_dataclass_defaults():
    mt = config_from_args(data_parser().parse_args(["mt", "--input", "c.jsonl", "--out", "o"]))
    assert (mt.filters, mt.splits, mt.normalize, mt.prompts) == (FilterConfig(), SplitConfig(), NormalizeConfig(),
                                                                 PromptConfig())
    assert mt.direction == dataclasses.fields(BuildConfig)[1].default == "zh-bo"
    assert mt == BuildConfig.from_mapping({"task": "mt", "input": {"paths": ["c.jsonl"]}})
    headline = config_from_args(data_parser().parse_args(["headline", "--input", "c.jsonl", "--out", "o"]))
    assert headline == BuildConfig.from_mapping({"task": "headline", "input": {"paths": ["c.jsonl"]}})
    # The task defaults, resolved once for both the command line and data.raw_corpus:
    assert headline.direction == "bo-bo" and headline.filters.max_length_ratio is None
    assert headline.filters == dataclasses.replace(FilterConfig(), max_length_ratio=None)
    helps = {a.dest: a.help for a in _subparser("mt")._actions}
    assert helps["build:filters.max_source_units"].endswith(f"(default: {FilterConfig().max_source_units})")
    assert helps["build:filters.max_length_ratio"].endswith(f"(default: {FilterConfig().max_length_ratio})")
    assert {a.dest: a.help for a in _subparser("headline")._actions}["build:filters.max_length_ratio"].endswith(
        "(default: null)")


def test_every_kind_of_flag_reaches_the_config():
    args = data_parser().parse_args([
        "mt", "--input", "a.tsv", "b.tsv", "--out", "o", "--format", "tsv", "--no-tsheg", "--t2s",
        "--max-length-ratio", "null", "--cold-start", "0.3", "--few-shot", "5", "10", "--seed", "7",
        "--instruction-language", "en", "--direction", "bo-zh", "--skip-invalid",
    ])
    cfg = config_from_args(args)
    assert cfg.input.paths == ("a.tsv", "b.tsv") and cfg.input.format == "tsv" and cfg.input.skip_invalid
    assert (cfg.normalize.tsheg, cfg.normalize.traditional_to_simplified) == (False, True)
    assert cfg.filters.max_length_ratio is None
    assert cfg.splits.cold_start == 0.3 and isinstance(cfg.splits.cold_start, float)
    assert cfg.splits.few_shot == (5, 10) and cfg.splits.seed == 7
    assert (cfg.prompts.instruction_language, cfg.direction) == ("en", "bo-zh")
    count = config_from_args(data_parser().parse_args(["mt", "--input", "a", "--out", "o", "--cold-start", "200"]))
    assert count.splits.cold_start == 200 and isinstance(count.splits.cold_start, int)


def test_cli_rejects_a_bad_value_naming_the_setting(tmp_path, capsys):
    from data_tools.cli import main

    assert main(["mt", "--input", "a.jsonl", "--out", str(tmp_path), "--min-script-share", "2"]) == 2
    assert "'filters.min_script_share': must be a finite number in [0, 1], got 2.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        data_parser().parse_args(["mt", "--input", "a", "--out", "o", "--format", "xml"])


def test_generated_flags_for_a_new_settings_class():
    @dataclasses.dataclass(frozen=True)
    class Demo(Settings):
        SECTION = "demo"

        steps: int = setting(10, ge=1, help="how many")
        note: str | None = None
        sizes: tuple[int, ...] = ()

    ap = argparse.ArgumentParser()
    add_flags(ap, Demo, group="demo", flags={"steps": "n"})
    given = flag_values(ap.parse_args(["--n", "3", "--sizes", "1", "2", "--note", "null"]), "demo")
    assert given == {"steps": 3, "sizes": [1, 2], "note": None}
    assert build_dataclass(Demo, given) == Demo(steps=3, note=None, sizes=(1, 2))
    assert build_dataclass(Demo, flag_values(ap.parse_args([]), "demo")) == Demo()
    with pytest.raises(ConfigError, match="'demo.steps': must be an integer in"):
        build_dataclass(Demo, flag_values(ap.parse_args(["--n", "0"]), "demo"))


def test_encoder_tools_flags_come_from_the_training_and_audit_dataclasses():
    from semantic_reward.encoder_tools.__main__ import flag_values as fv
    from semantic_reward.encoder_tools.__main__ import parser, train_config_from_args
    from semantic_reward.encoder_tools.audit import AuditThresholds
    from semantic_reward.encoder_tools.train import EncoderTrainConfig

    base = ["train", "--input", "c.jsonl", "--model", "m", "--out", "run"]
    assert train_config_from_args(parser().parse_args(base), "tibetan") == EncoderTrainConfig(model="m",
                                                                                               output_dir="run")
    # the targets' language is the corpus direction's, never a second flag that could disagree with it
    assert train_config_from_args(parser().parse_args(base), "chinese").target_language == "chinese"
    assert "--target-language" not in parser().format_help() + str(parser()._subparsers._group_actions[0].choices["train"].format_help())
    tuned = train_config_from_args(parser().parse_args([*base, "--lr", "1e-3", "--save-steps", "7"]), "tibetan")
    assert (tuned.learning_rate, tuned.save_steps, tuned.eval_steps) == (1e-3, 7, 7)
    audit = parser().parse_args(["audit", "--input", "c.jsonl", "--encoder", "a=b", "--out", "o", "--min-auc", "0.8"])
    assert build_dataclass(AuditThresholds, fv(audit, "thresholds")) == AuditThresholds(min_auc=0.8)
    assert build_dataclass(AuditThresholds, fv(parser().parse_args(audit_args := [
        "audit", "--input", "c", "--encoder", "a=b", "--out", "o"]), "thresholds")) == AuditThresholds()
    corpus = fv(parser().parse_args([*audit_args, "--t2s", "--direction", "bo-zh"]), "corpus")
    assert corpus == {"input": {"paths": ["c"]}, "normalize": {"traditional_to_simplified": True},
                      "direction": "bo-zh"}


# -- the evaluation and encoder-tool settings on the same system ---------------------------------


def _eval_mapping(tmp_path, **changes) -> dict:
    test_file = tmp_path / "test.jsonl"
    test_file.write_text('{"source": "s", "reference": "r"}\n', encoding="utf-8")
    base = {"output_dir": str(tmp_path / "report"), "test_file": str(test_file), "source_language": "zh",
            "target_language": "bo", "systems": {"grpo": {"model": "org/model"}}, "paired_reference": None}
    return deep_merge(base, changes)


@pytest.mark.parametrize(
    ("changes", "key", "detail"),
    [
        ({"device": "cuda:abc"}, "device", "'cuda:abc' is not auto, cpu, cuda, cuda:N or mps"),
        ({"device": "gpu"}, "device", "'gpu' is not auto"),
        ({"max_examples": 0}, "max_examples", "must be an integer in [1, inf), got 0"),
        ({"n_bootstrap": -5}, "n_bootstrap", "must be an integer in [1, inf), got -5"),
        ({"generation": {"batch_size": 0}}, "generation.batch_size", "must be an integer in [1, inf), got 0"),
        ({"generation": {"backend": "tgi"}}, "generation.backend", "tgi"),
        ({"systems": {"grpo": {"generations": "/no/such.jsonl"}}}, "systems.grpo.generations", "does not exist"),
        ({"systems": {"grpo": {"model": None}}}, "systems.grpo", "needs 'model'"),
    ],
)
def test_evaluation_settings_fail_naming_the_key(tmp_path, changes, key, detail):
    from semantic_reward.evaluation.run_config import EvalRunConfig

    with pytest.raises(ConfigError) as err:
        build_dataclass(EvalRunConfig, _eval_mapping(tmp_path, **changes))
    assert err.value.key == key
    assert f"evaluation setting '{key}'" in str(err.value) and detail in str(err.value)


def test_evaluation_settings_accept_what_the_reward_accepts(tmp_path):
    from semantic_reward.evaluation.run_config import Backend, EvalRunConfig

    for device in ("auto", "cpu", "cuda", "cuda:3", "mps"):
        assert build_dataclass(EvalRunConfig, _eval_mapping(tmp_path, device=device)).device == device
        assert EncoderConfig(device=device).device == device  # the same spelling rule as the reward's
    cfg = build_dataclass(EvalRunConfig, _eval_mapping(tmp_path, generation={"backend": "hf"}))
    assert cfg.generation.backend is Backend.hf and cfg.generation.backend == "hf"
    with pytest.raises(ConfigError, match="'encoder.device': 'cuda:abc'"):
        EncoderConfig(device="cuda:abc")
    missing = _eval_mapping(tmp_path)
    del missing["output_dir"]
    with pytest.raises(ConfigError, match="'output_dir': is required"):
        build_dataclass(EvalRunConfig, missing)


@pytest.mark.parametrize(
    ("changes", "key", "detail"),
    [
        ({"epochs": -1}, "epochs", "must be a finite number in (0, inf), got -1"),
        ({"epochs": 0}, "epochs", "(0, inf), got 0"),
        ({"batch_size": 1}, "batch_size", "must be an integer in [2, inf), got 1"),
        ({"learning_rate": 0.0}, "learning_rate", "(0, inf), got 0.0"),
        ({"warmup_ratio": 1.5}, "warmup_ratio", "[0, 1), got 1.5"),
        ({"device": "cuda:abc"}, "device", "'cuda:abc' is not auto"),
        ({"anchor": "middle"}, "anchor", "middle"),
        ({"save_steps": 5, "eval_steps": 3}, "save_steps", "must be a multiple of 'eval_steps' (3)"),
    ],
)
def test_encoder_training_settings_fail_naming_the_key(changes, key, detail):
    from semantic_reward.encoder_tools.train import EncoderTrainConfig

    for make in (lambda: EncoderTrainConfig(model="m", output_dir="o", **changes),
                 lambda: build_dataclass(EncoderTrainConfig, {"model": "m", "output_dir": "o", **changes})):
        with pytest.raises(ConfigError) as err:
            make()
        assert err.value.key == key
        assert f"encoder training setting '{key}'" in str(err.value) and detail in str(err.value)


def test_encoder_training_anchor_is_a_choice():
    from semantic_reward.encoder_tools.train import Anchor, EncoderTrainConfig

    cfg = EncoderTrainConfig(model="m", output_dir="o", anchor="target", device="cuda:1")
    assert cfg.anchor is Anchor.target and cfg.anchor == "target" and cfg.device == "cuda:1"


@pytest.mark.parametrize("key", ["min_p_at_1", "min_auc", "max_unk_share"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_audit_thresholds_are_shares(key, value):
    from semantic_reward.encoder_tools.audit import AuditThresholds

    with pytest.raises(ConfigError) as err:
        build_dataclass(AuditThresholds, {key: value})
    assert err.value.key == key
    assert f"audit setting '{key}': must be a finite number in [0, 1]" in str(err.value)
    assert getattr(AuditThresholds(**{key: 1.0}), key) == 1.0  # the bounds themselves are shares


def test_audit_cli_rejects_a_threshold_outside_zero_one(capsys):
    from semantic_reward.encoder_tools.__main__ import main

    rc = main(["audit", "--input", "c.jsonl", "--encoder", "a=b", "--out", "o", "--direction", "zh-bo",
               "--min-auc", "1.2"])
    assert rc == 2
    assert "audit setting 'min_auc': must be a finite number in [0, 1], got 1.2" in capsys.readouterr().err
