"""One recipe per row of the paper's reward ablation (issue 12, item 4): each composes with both
profiles, passes recipe_check, differs from the headline GRPO recipe only in its reward terms, and its
composed settings score as the row says."""

import asyncio
from pathlib import Path

import pytest
import sacrebleu
from omegaconf import OmegaConf

from semantic_reward.config import SemanticRewardConfig
from semantic_reward.recipe_check import check_recipe, compose_recipe
from semantic_reward.reward_math import cosine_similarity
from semantic_reward.scorer import SemanticScorer
from semantic_reward.service import LocalEmbeddingService
from semantic_reward.text import pretokenize
from tests.helpers import HashEncoder

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (ROOT / "recipes" / "profile").glob("*.yaml"))

# recipe -> (similarity weights, language weight, tau); the paper's row name is in each recipe's header
ROWS = {
    "ablation_embedding_lc": ({"embedding": 1.0, "bleu": 0.0, "chrf": 0.0}, 1.0, 0.5),
    "ablation_bleu_lc": ({"embedding": 0.0, "bleu": 1.0, "chrf": 0.0}, 1.0, 0.0),
    "ablation_bleu_embedding_lc": ({"embedding": 0.5, "bleu": 0.5, "chrf": 0.0}, 1.0, 0.25),
    "ablation_bleu_embedding_no_lc": ({"embedding": 0.5, "bleu": 0.5, "chrf": 0.0}, 0.0, 0.25),
}
ROW_NAMES = {"ablation_embedding_lc": "'embedding + LC'", "ablation_bleu_lc": "'BLEU + LC'",
             "ablation_bleu_embedding_lc": "'BLEU + embedding + LC'",
             "ablation_bleu_embedding_no_lc": "'BLEU + embedding without LC'"}

REF = "བཀྲ་ཤིས་བདེ་ལེགས་ཕུན་སུམ་ཚོགས།"
OUT = "བཀྲ་ཤིས་བདེ་ལེགས་ཡིན།"
MIXED = "བཀྲ་ཤིས་བདེ་ལེགས 新中国成立的时候"  # half Chinese: R_lang = 0


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("recipe", sorted(ROWS))
def test_row_recipe_composes_and_passes_the_checks(recipe, profile):
    cfg = check_recipe(recipe, profile)
    weights, language_weight, tau = ROWS[recipe]
    settings = SemanticRewardConfig.from_mapping(OmegaConf.to_container(cfg.reward.reward_kwargs, resolve=True))
    assert settings.similarity.weights() == weights
    assert (settings.language_weight, settings.semantic_weight, settings.tau) == (language_weight, 1.5, tau)
    assert settings.mode == "reference" and settings.combine == "additive"
    assert cfg.trainer.experiment_name == recipe


@pytest.mark.parametrize("recipe", sorted(ROWS))
def test_row_differs_from_the_headline_recipe_only_in_its_reward_terms(recipe):
    row = OmegaConf.to_container(compose_recipe(recipe, "paper"), resolve=True)
    headline = OmegaConf.to_container(compose_recipe("grpo_semantic_zh_bo", "paper"), resolve=True)
    for cfg in (row, headline):
        cfg["trainer"].pop("experiment_name")
        cfg["trainer"].pop("default_local_dir")
        cfg["actor_rollout_ref"]["rollout"]["trace"].pop("experiment_name")  # ${trainer.experiment_name}
        for key in ("similarity", "language_weight", "tau"):
            cfg["reward"]["reward_kwargs"].pop(key)
    assert row == headline
    assert ROW_NAMES[recipe] in (ROOT / "recipes" / f"{recipe}.yaml").read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.parametrize("recipe", sorted(ROWS))
def test_row_settings_score_as_the_row_says(recipe):
    settings = SemanticRewardConfig.from_mapping(
        OmegaConf.to_container(compose_recipe(recipe, "cpu-tiny").reward.reward_kwargs, resolve=True))
    backend = HashEncoder()
    service = LocalEmbeddingService(service=settings.service, backend=backend) if settings.similarity.uses_encoder else None
    scorer = SemanticScorer(settings, service)
    weights, language_weight, tau = ROWS[recipe]
    for out in (OUT, MIXED):
        res = asyncio.run(scorer.score(out, reference=REF))
        cos = cosine_similarity(backend.vector(out), backend.vector(REF)) if weights["embedding"] else 0.0
        bleu = sacrebleu.sentence_bleu(pretokenize(out), [pretokenize(REF)], tokenize="none").score / 100
        s = (weights["embedding"] * cos + weights["bleu"] * bleu) / (weights["embedding"] + weights["bleu"])
        r_sim = max(s - tau, 0.0) / (1 - tau)
        r_lang = 1.0 if out == OUT else 0.0
        assert res["semantic_similarity"] == pytest.approx(s)
        assert res["language_reward"] == r_lang
        assert res["score"] == pytest.approx(1.5 * r_sim + language_weight * r_lang)
    assert (scorer.service is None) == (weights["embedding"] == 0)  # BLEU + LC loads no encoder
