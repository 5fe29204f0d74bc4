"""Chat prompts from YAML templates (data, not code)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from .config import WHAT, BuildConfig, ConfigError, Task

__all__ = ["PromptBuilder"]


class PromptBuilder:
    """Renders the chat messages of one example."""

    def __init__(self, config: BuildConfig):
        pc = config.prompts
        if pc.templates_file:
            path = Path(pc.templates_file)
            if not path.exists():
                raise ConfigError.at("prompts.templates_file", f"{path} does not exist", WHAT)
            text = path.read_text(encoding="utf-8")
        else:
            text = resources.files("data_tools").joinpath("prompts.yaml").read_text(encoding="utf-8")
        templates = yaml.safe_load(text) or {}
        key = config.direction if config.task == Task.mt else str(config.task)
        try:
            self.template = templates[key][pc.instruction_language]
        except (KeyError, TypeError) as exc:
            raise ConfigError.at(
                "prompts", f"no template for '{key}' in language '{pc.instruction_language}' "
                f"(templates have: {sorted(templates)})", WHAT
            ) from exc
        if "{source}" not in self.template:
            raise ConfigError.at("prompts", f"the template for '{key}' lacks '{{source}}'", WHAT)
        self.system_prompt = pc.system_prompt

    def messages(self, source: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        msgs.append({"role": "user", "content": self.template.replace("{source}", source)})
        return msgs
