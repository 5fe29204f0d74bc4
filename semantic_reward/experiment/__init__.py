"""The paper's experiment as one pipeline: stages in order, each a real command (verl's trainers,
data_tools, the encoder tools, the evaluation) with scale from a profile; see ``python -m
semantic_reward.experiment run --help``."""

from .runner import RunError, run_experiment
from .spec import Experiment, ExperimentError, load_experiment
from .stages import StageFailed

__all__ = ["Experiment", "ExperimentError", "RunError", "StageFailed", "load_experiment", "run_experiment"]
