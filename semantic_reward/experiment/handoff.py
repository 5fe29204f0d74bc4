"""Hand-offs that carry the weights: a verl checkpoint -> a Hugging Face model the next stage loads.

verl's model merger turns FSDP shards into a Hugging Face folder, but with LoRA it writes the
base weights unchanged plus the adapter in ``lora_adapter/``; a stage pointed at that folder
would train from the pre-LoRA weights. So a LoRA checkpoint is merged with PEFT's
``merge_and_unload``. A full fine-tune from verl's SFT trainer is saved by the trainer itself
(``checkpoint.save_contents`` includes ``hf_model``); with LoRA that copy holds PEFT-named
tensors a plain model cannot load, so LoRA always takes the merger path.

The merge is done and saved in float32, and the unmerged pair is kept: verl's merger
folder (the parent's weights) with its ``lora_adapter/`` stays beside the merged model,
and ``handoff.json`` in the merged folder names both. A GRPO update at lr 5e-7 (~5e-5
per weight) is below half a bf16 step of typical weights, so the merged model must be
evaluated in float32 (the evaluation's default ``generation.dtype``) or as parent +
adapter (``systems.NAME.model`` = ``adapter_base``, ``systems.NAME.adapter`` = ``adapter``).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["HANDOFF_FILE", "HandoffError", "export_checkpoint", "latest_checkpoint", "merge_lora", "read_handoff"]

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
HANDOFF_FILE = "handoff.json"
MERGE_DTYPE = "float32"


class HandoffError(RuntimeError):
    """A checkpoint that cannot become a loadable model."""


def latest_checkpoint(ckpt_dir: Path) -> Path:
    """The ``global_step_N`` folder verl's tracker file names (the last one saved)."""
    tracker = ckpt_dir / "latest_checkpointed_iteration.txt"
    if tracker.is_file():
        step = tracker.read_text(encoding="utf-8").strip()
        folder = ckpt_dir / f"global_step_{step}"
        if folder.is_dir():
            return folder
    steps = sorted(ckpt_dir.glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not steps:
        raise HandoffError(f"{ckpt_dir} holds no global_step_* checkpoint: did the trainer save one "
                           "(trainer.save_freq, or the last step)?")
    return steps[-1]


def merge_lora(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """PEFT: base + adapter -> one merged model (``merge_and_unload``), with the base's tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, MERGE_DTYPE))
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return out_dir


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES)


def export_checkpoint(step_dir: Path, out_dir: Path, run: Callable[[list[str], Path], None] | None = None) -> Path:
    """``global_step_N`` (SFT) or ``global_step_N/actor`` (GRPO) -> a merged HF model in ``out_dir``.

    ``run(cmd, log_path)`` runs verl's merger (the runner passes its own so the command is logged).
    """
    shards = step_dir / "actor" if (step_dir / "actor").is_dir() else step_dir
    lora = (shards / "lora_train_meta.json").is_file() or (shards / "lora_adapter").is_dir()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    hf = shards / "huggingface"
    if not lora and _has_weights(hf):
        shutil.copytree(hf, out_dir)
        (out_dir / HANDOFF_FILE).write_text(json.dumps({"lora": False, "checkpoint": str(shards.resolve())},
                                                       indent=2), encoding="utf-8")
        return out_dir
    verl_out = out_dir.parent / (out_dir.name + "_verl_merger")
    if verl_out.exists():
        shutil.rmtree(verl_out)
    cmd = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
           "--local_dir", str(shards), "--target_dir", str(verl_out)]
    if run is None:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    else:
        run(cmd, out_dir.parent / "model_merger.log")
    adapter = verl_out / "lora_adapter"
    if adapter.is_dir():
        merge_lora(verl_out, adapter, out_dir)
        # the unmerged pair stays where the merger wrote it: the evaluation can serve parent + adapter
        record = {"lora": True, "merge_dtype": MERGE_DTYPE, "adapter_base": str(verl_out.resolve()),
                  "adapter": str(adapter.resolve()), "checkpoint": str(shards.resolve())}
    elif lora:
        raise HandoffError(f"{shards} was trained with LoRA but verl's merger wrote no lora_adapter/ in {verl_out}")
    else:
        verl_out.rename(out_dir)
        record = {"lora": False, "checkpoint": str(shards.resolve())}
    if not _has_weights(out_dir):
        raise HandoffError(f"{out_dir} holds no model weights after the merge of {shards}")
    (out_dir / HANDOFF_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return out_dir


def read_handoff(model_dir: str | Path) -> dict | None:
    """``handoff.json`` of a merged hand-off (None for a model that did not come through one)."""
    path = Path(model_dir) / HANDOFF_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HandoffError(f"{path}: not valid JSON ({exc.msg})") from exc
