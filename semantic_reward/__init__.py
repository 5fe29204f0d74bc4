"""semantic-reward: embedding-level semantic rewards for GRPO in verl.

The reward math, language check, encoders and embedding service import without
verl or Ray; the verl adapter lives in ``semantic_reward.verl_adapter``.
"""

from .config import ConfigError, EncoderConfig, SemanticRewardConfig, ServiceConfig
from .encoders import EncoderError
from .languages import LanguageRegistry, script_share
from .reward_math import REWARD_KEYS, reward_components, similarity_reward
from .scorer import DataError, SemanticScorer

__all__ = [
    "ConfigError",
    "DataError",
    "EncoderConfig",
    "EncoderError",
    "LanguageRegistry",
    "REWARD_KEYS",
    "SemanticRewardConfig",
    "SemanticScorer",
    "ServiceConfig",
    "reward_components",
    "script_share",
    "similarity_reward",
]

__version__ = "0.1.0"
