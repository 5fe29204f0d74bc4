"""General-ability benchmarks through EleutherAI's lm-evaluation-harness.

A configurable task list (for example cmmlu, ceval-valid, mmlu, gsm8k). The harness
downloads its datasets from the hub, so this runs where the hub is reachable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["run_lm_eval"]


def run_lm_eval(model_path: str, tasks: Sequence[str], limit: int | float | None = None, batch_size: int = 8,
                device: str = "cuda", num_fewshot: int | None = None,
                include_path: str | None = None) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} from ``lm_eval.simple_evaluate`` with a transformers model.

    ``include_path`` adds a folder of task YAMLs of your own (e.g. local data).
    """
    try:
        import lm_eval
    except ImportError as exc:
        raise RuntimeError("general benchmarks need lm-eval: pip install 'semantic-reward[eval]'") from exc
    from lm_eval.tasks import TaskManager

    results: dict[str, Any] = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_path}", tasks=list(tasks), limit=limit,
        batch_size=batch_size, device=device, num_fewshot=num_fewshot,
        task_manager=TaskManager(include_path=include_path) if include_path else None,
    )
    out: dict[str, dict[str, float]] = {}
    for task, metrics in results["results"].items():
        out[task] = {k.split(",")[0]: float(v) for k, v in metrics.items()
                     if isinstance(v, int | float) and not k.startswith("alias") and "_stderr" not in k}
    return out
