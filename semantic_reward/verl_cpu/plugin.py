"""Target of the ``semantic_reward_cpu`` entry point in the ``verl.plugins`` group.

verl imports it in every process when ``verl`` is imported, and logs a failure here
only at DEBUG level; so a failure that matters (the CPU platform was selected but
cannot be set up) is logged at ERROR before it is raised. Without
``VERL_PLATFORM=cpu`` the plugin only registers the ``cpu`` and ``hf`` names, and
on a verl it was not written for it does nothing at all.
"""

from __future__ import annotations

import logging

from .patches import VerlVersionError, apply_cpu_patches, cpu_selected, register_names

logger = logging.getLogger(__name__)


def load() -> None:
    """Register the names; patch torch/verl only when the CPU platform is selected."""
    selected = cpu_selected()
    try:
        register_names()
        if selected:
            apply_cpu_patches()
    except VerlVersionError as exc:
        if selected:
            logger.error("VERL_PLATFORM=cpu cannot be used: %s", exc)
            raise
        logger.info("semantic_reward.verl_cpu left out: %s", exc)
    except Exception:
        if selected:
            logger.exception("semantic_reward.verl_cpu: the CPU platform for verl could not be set up")
        raise


load()
