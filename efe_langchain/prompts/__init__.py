"""Prompt data shipped with the package: the GPT4Tools layout and tool descriptions.

These files are copied verbatim from GPT4Tools (typos included) because the published LoRA
weights and ours were trained on exactly these bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["ToolSpec", "load_prompt_layout", "load_tool_specs", "tool_spec"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the ReAct prompt sees it: its GPT4Tools name, description and argument count."""

    name: str
    description: str
    n_args: int = 1
    reference_class: str = ""
    reference_checkpoint: str = ""
    in_training_data: bool = True

    @property
    def takes_image(self) -> bool:
        """Whether the first argument is an image path (GPT4Tools descriptions say so in words)."""
        return "image_path" in self.description


def _read(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def load_prompt_layout() -> dict:
    """The GPT4Tools prompt pieces: prefix, tool line, format instructions, suffix, step templates."""
    return _read("gpt4tools_prompt.json")


@lru_cache(maxsize=None)
def load_tool_specs() -> tuple[ToolSpec, ...]:
    """The 24 GPT4Tools tools, in the order of the published tool list."""
    return tuple(ToolSpec(**t) for t in _read("gpt4tools_tools.json")["tools"])


def tool_spec(name: str) -> ToolSpec:
    """The GPT4Tools spec of one tool by its exact name."""
    for spec in load_tool_specs():
        if spec.name == name:
            return spec
    raise KeyError(f"no GPT4Tools tool named {name!r}")
