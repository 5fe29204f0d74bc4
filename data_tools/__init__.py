"""Tibetan dataset adapters: raw corpora to verl's RL and SFT parquet formats.

``python -m data_tools mt|headline|mono ...`` on the command line; the same
pipeline (readers -> normalisation -> filters -> splits -> prompts) backs the
``data.custom_cls`` dataset in ``data_tools.verl_dataset``.
"""

from .config import BuildConfig, FilterConfig, InputConfig, NormalizeConfig, PromptConfig, SplitConfig, TokenConfig
from .errors import InputError
from .pipeline import BuildResult, build

__all__ = [
    "BuildConfig",
    "BuildResult",
    "FilterConfig",
    "InputConfig",
    "InputError",
    "NormalizeConfig",
    "PromptConfig",
    "SplitConfig",
    "TokenConfig",
    "build",
]
