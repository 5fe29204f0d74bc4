"""Every value a recipe labels ``[paper]`` or ``[follow-up]`` is the one PAPER.md gives (issue 12, item 6).

A label is a comment line starting with ``# [paper]``, ``# [follow-up]`` or ``# [default]``; it applies
to the next key. On a mapping key it applies to every leaf below that has no label of its own. The
table below cites the PAPER.md section each published value comes from; a labelled key missing from the
table fails (a new [paper] mark needs its source), and so does a table entry no file labels.
A [paper] value that is a ``${profile.X}`` interpolation must point at a [paper]-labelled profile key.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
FILES = sorted([*RECIPES.glob("*.yaml"), *(RECIPES / "base").glob("*.yaml"), RECIPES / "profile" / "paper.yaml"])
PUBLISHED = ("paper", "follow-up")

PIPELINE = "PAPER.md, Pipeline (paper)"
REWARD = "PAPER.md, Reward (paper)"
ABLATION = "PAPER.md, Reward (paper): Reward ablation"
FOLLOW_UP = "PAPER.md, Follow-up (SG-SRL) additions"
QWEN_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# (file relative to recipes/, dotted key) -> (PAPER.md's value, where PAPER.md gives it)
TABLE = {
    ("profile/paper.yaml", "model"): ("Qwen/Qwen3-4B", f"{PIPELINE} 3: base model Qwen3-4B"),
    ("profile/paper.yaml", "lora.rank"): (64, f"{PIPELINE} 3: rank 64"),
    ("profile/paper.yaml", "lora.alpha"): (128, f"{PIPELINE} 3: alpha 128"),
    ("profile/paper.yaml", "lora.target_modules"): (QWEN_LINEAR, f"{PIPELINE} 3: attention and MLP linear layers"),
    ("profile/paper.yaml", "grpo.n"): (8, f"{PIPELINE} 2: group size n = 8"),
    ("profile/paper.yaml", "grpo.lr"): (5e-7, f"{PIPELINE} 2: lr 5e-7"),
    ("profile/paper.yaml", "grpo.total_epochs"): (1, f"{PIPELINE} 2: 1 epoch"),
    ("profile/paper.yaml", "sft.train_batch_size"): (32, f"{PIPELINE} 1: batch 32"),
    ("profile/paper.yaml", "sft.lr"): (2e-5, f"{PIPELINE} 1: AdamW lr 2e-5"),
    ("profile/paper.yaml", "sft.total_epochs"): (2, f"{PIPELINE} 1: 2 epochs"),
    ("profile/paper.yaml", "data.cold_start"): (5000, f"{PIPELINE} 1: about 5k parallel samples"),
    ("base/sft.yaml", "optim.optimizer"): ("AdamW", f"{PIPELINE} 1: AdamW"),
    ("base/sft.yaml", "optim.lr_scheduler_type"): ("cosine", f"{PIPELINE} 1: cosine schedule"),
    ("base/grpo.yaml", "actor_rollout_ref.rollout.n"): ("${profile.grpo.n}", f"{PIPELINE} 2: n = 8, via the profile"),
    ("base/grpo.yaml", "actor_rollout_ref.rollout.temperature"): (0.8, f"{PIPELINE} 2: temperature 0.8"),
    ("base/grpo.yaml", "actor_rollout_ref.rollout.top_p"): (0.9, f"{PIPELINE} 2: top-p 0.9"),
    ("base/grpo.yaml", "reward.reward_kwargs.mode"): ("reference", f"{REWARD}: s = cos(f(y), f(y*))"),
    ("base/grpo.yaml", "reward.reward_kwargs.similarity.embedding"): (1.0, f"{REWARD}: s is the cosine alone"),
    ("base/grpo.yaml", "reward.reward_kwargs.similarity.bleu"): (0.0, f"{REWARD}: s is the cosine alone"),
    ("base/grpo.yaml", "reward.reward_kwargs.similarity.chrf"): (0.0, f"{REWARD}: s is the cosine alone"),
    ("base/grpo.yaml", "reward.reward_kwargs.semantic_weight"): (1.5, f"{REWARD}: R = 1.5 * R_sim + 1.0 * R_lang"),
    ("base/grpo.yaml", "reward.reward_kwargs.language_weight"): (1.0, f"{REWARD}: R = 1.5 * R_sim + 1.0 * R_lang"),
    ("base/grpo.yaml", "reward.reward_kwargs.encoder.max_length"): (128, f"{REWARD}: encoder max length 128"),
    # the ablation rows: which terms, and whether the language term is there
    ("ablation_embedding_lc.yaml", "reward.reward_kwargs.similarity.embedding"): (1.0, f"{ABLATION}: embedding+LC"),
    ("ablation_embedding_lc.yaml", "reward.reward_kwargs.similarity.bleu"): (0.0, f"{ABLATION}: embedding+LC"),
    ("ablation_embedding_lc.yaml", "reward.reward_kwargs.similarity.chrf"): (0.0, f"{ABLATION}: embedding+LC"),
    ("ablation_embedding_lc.yaml", "reward.reward_kwargs.language_weight"): (1.0, f"{ABLATION}: +LC, 1.0 * R_lang"),
    ("ablation_bleu_lc.yaml", "reward.reward_kwargs.similarity.embedding"): (0.0, f"{ABLATION}: BLEU+LC"),
    ("ablation_bleu_lc.yaml", "reward.reward_kwargs.similarity.bleu"): (1.0, f"{ABLATION}: BLEU+LC"),
    ("ablation_bleu_lc.yaml", "reward.reward_kwargs.similarity.chrf"): (0.0, f"{ABLATION}: BLEU+LC"),
    ("ablation_bleu_lc.yaml", "reward.reward_kwargs.language_weight"): (1.0, f"{ABLATION}: +LC, 1.0 * R_lang"),
    ("ablation_bleu_embedding_lc.yaml", "reward.reward_kwargs.similarity.chrf"): (0.0, f"{ABLATION}: no chrF"),
    ("ablation_bleu_embedding_lc.yaml", "reward.reward_kwargs.language_weight"): (1.0, f"{ABLATION}: +LC"),
    ("ablation_bleu_embedding_no_lc.yaml", "reward.reward_kwargs.similarity.chrf"): (0.0, f"{ABLATION}: no chrF"),
    ("ablation_bleu_embedding_no_lc.yaml", "reward.reward_kwargs.language_weight"): (0.0, f"{ABLATION}: without LC"),
    # the follow-up (SG-SRL)
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.mode"): ("source", f"{FOLLOW_UP}: score against the SOURCE"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.combine"): ("gated", f"{FOLLOW_UP}: hard language gate g"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.semantic_weight"): (1.0, f"{FOLLOW_UP}: g * max(r_sem - ...)"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.length_penalty.weight"): (0.2, f"{FOLLOW_UP}: weight 0.20"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.length_penalty.start"): (2.5, f"{FOLLOW_UP}: starts at 2.5x"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.length_penalty.full"): (5.0, f"{FOLLOW_UP}: full at 5.0x"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.length_penalty.relative_to"): (
        "batch_median", f"{FOLLOW_UP}: relative to the batch median length"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.repetition_penalty.weight"): (0.05, f"{FOLLOW_UP}: 0.05"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.repetition_penalty.n"): (4, f"{FOLLOW_UP}: 4-gram"),
    ("ablation_source_grounded.yaml", "reward.reward_kwargs.repetition_penalty.threshold"): (
        0.15, f"{FOLLOW_UP}: above 0.15"),
    ("recover_sft.yaml", "trainer.total_epochs"): (1, f"{FOLLOW_UP}: recovery SFT 1 epoch"),
}

LABEL = re.compile(r"^\s*#\s*\[(paper|follow-up|default)\]")
KEY = re.compile(r"^(\s*)([A-Za-z_][\w.-]*)\s*:(.*)$")


def labelled_leaves(path: Path) -> dict[str, str]:
    """{dotted key of a leaf: its label} for every leaf that has a label, own or inherited from a mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    own: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = LABEL.match(line)
        if match:
            pending = match.group(1)
            continue
        key = KEY.match(line)
        if not key or line.lstrip().startswith("#"):
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(k for _, k in stack), key.group(2)])
        stack.append((indent, key.group(2)))
        if pending:
            own[dotted] = pending
            pending = None

    leaves: dict[str, str] = {}

    def walk(node, prefix: str, inherited: str | None) -> None:
        label = own.get(prefix, inherited) if prefix else None
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k), label)
        elif label:
            leaves[prefix] = label

    walk(data, "", None)
    return leaves


def value_at(path: Path, dotted: str):
    node = yaml.safe_load(path.read_text(encoding="utf-8"))
    for part in dotted.split("."):
        node = node[part]
    return node


def published() -> dict[tuple[str, str], str]:
    found = {}
    for path in FILES:
        rel = path.relative_to(RECIPES).as_posix()
        for dotted, label in labelled_leaves(path).items():
            if label in PUBLISHED:
                found[(rel, dotted)] = label
    return found


def test_the_parser_sees_labels_on_keys_and_on_mappings(tmp_path):
    sample = tmp_path / "s.yaml"
    sample.write_text("# header mentions [paper] but labels nothing\na:\n  # [paper] a note\n  b: 1\n  c: 2\n"
                      "# [paper]\nd:\n  e: 3\n  # [default]\n  f: 4\n", encoding="utf-8")
    assert labelled_leaves(sample) == {"a.b": "paper", "d.e": "paper", "d.f": "default"}


def test_every_published_label_is_in_the_table_and_every_table_entry_is_labelled():
    found = published()
    assert sorted(set(found) - set(TABLE)) == [], "labelled [paper]/[follow-up] without a PAPER.md source here"
    assert sorted(set(TABLE) - set(found)) == [], "table entries that no recipe file labels [paper]/[follow-up]"


@pytest.mark.parametrize(("rel", "dotted"), sorted(TABLE))
def test_published_value_is_papers(rel, dotted):
    expected, source = TABLE[(rel, dotted)]
    value = value_at(RECIPES / rel, dotted)
    if isinstance(value, str) and value.startswith("${profile."):
        assert value == expected, source
        target = value[len("${profile."):-1]
        assert labelled_leaves(RECIPES / "profile" / "paper.yaml").get(target) == "paper", (
            f"{rel}: {dotted} reads profile {target}, which paper.yaml does not label [paper]")
        return
    if isinstance(expected, float):
        assert value == pytest.approx(expected), f"{rel}: {dotted} = {value!r}, {source} says {expected!r}"
    else:
        assert value == expected, f"{rel}: {dotted} = {value!r}, {source} says {expected!r}"


def test_the_published_sources_exist_in_paper_md():
    paper = ROOT.parent / "shared" / "docs" / "PAPER.md"
    if not paper.exists():
        pytest.skip(f"{paper} is not here (the shared docs are outside the repository)")
    text = paper.read_text(encoding="utf-8")
    for heading in ("## Pipeline (paper)", "## Reward (paper)", "## Follow-up (SG-SRL) additions"):
        assert heading in text
    for fact in ("lr 5e-7", "group size n = 8", "temperature 0.8", "top-p 0.9", "rank 64, alpha 128",
                 "R = 1.5 * R_sim + 1.0 * R_lang", "max length 128", "embedding+LC 0.7164", "BLEU+LC 0.6375",
                 "BLEU+embedding+LC 0.6175", "BLEU+embedding without LC 0.2312", "starts at 2.5x the median",
                 "full at 5.0x, weight 0.20", "above 0.15 (weight 0.05)", "recovery SFT 1 epoch",
                 "2 epochs, AdamW lr 2e-5, batch 32"):
        assert fact in text, fact


def test_unpublished_verl_values_that_change_the_loss_are_stated_and_labelled_default():
    leaves = labelled_leaves(RECIPES / "base" / "grpo.yaml")
    for key in ("actor_rollout_ref.actor.loss_agg_mode", "actor_rollout_ref.actor.clip_ratio",
                "actor_rollout_ref.actor.clip_ratio_low", "actor_rollout_ref.actor.clip_ratio_high",
                "actor_rollout_ref.actor.kl_loss_coef", "actor_rollout_ref.actor.kl_loss_type",
                "actor_rollout_ref.actor.use_kl_loss", "actor_rollout_ref.actor.entropy_coeff",
                "algorithm.norm_adv_by_std_in_grpo", "reward.reward_kwargs.tau"):
        assert leaves.get(key) == "default", key
