"""Chat prompts from YAML templates (data, not code)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from .config import BuildConfig, ConfigError

__all__ = ["PromptBuilder"]


class PromptBuilder:
    """Renders the chat messages of one example."""

    def __init__(self, config: BuildConfig):
        pc = config.prompts
        if pc.templates_file:
            path = Path(pc.templates_file)
            if not path.exists():
                raise ConfigError(f"data_tools setting 'prompts.templates_file': {path} does not exist")
            text = path.read_text(encoding="utf-8")
        else:
            text = resources.files("data_tools").joinpath("prompts.yaml").read_text(encoding="utf-8")
        templates = yaml.safe_load(text) or {}
        key = config.direction if config.task == "mt" else config.task
        try:
            self.template = templates[key][pc.instruction_language]
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"data_tools setting 'prompts': no template for {key!r} in language {pc.instruction_language!r} "
                f"(templates have: {sorted(templates)})"
            ) from exc
        if "{source}" not in self.template:
            raise ConfigError(f"data_tools setting 'prompts': the template for {key!r} lacks '{{source}}'")
        self.system_prompt = pc.system_prompt

    def messages(self, source: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        msgs.append({"role": "user", "content": self.template.replace("{source}", source)})
        return msgs
