"""Annotation files in GPT4Tools' evaluation format: loading, validation, and what a prompt holds.

A record's instruction is a fully rendered GPT4Tools prompt; everything a runner needs beyond the
text (the listed tools with their argument counts, the image paths of the conversation, the
chat-history / new-input / scratchpad parts for chat APIs) is read back from it here, so any
annotation file works, not only ones this project generated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from efe_langchain.react import extract_image_paths

__all__ = [
    "AnnotationError",
    "EvalRecord",
    "PromptTool",
    "PromptParts",
    "load_records",
    "validate_records",
    "prompt_tools",
    "prompt_images",
    "split_instruction",
    "reference_observations",
    "reference_tools",
    "tool_choices",
]


class AnnotationError(ValueError):
    """The annotation file cannot be evaluated; the message names the file, record and field."""


@dataclass(frozen=True)
class EvalRecord:
    id: int | str
    instruction: str
    output: str
    input: str = ""
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        """The id as a string: how predictions are stored and matched (JSON keys are strings)."""
        return str(self.id)


_REQUIRED = {"id": (int, str), "instruction": (str,), "output": (str,)}


def validate_records(data: Any, source: str = "<records>") -> list[EvalRecord]:
    """Check the structure of a parsed annotation file and build records, or raise AnnotationError."""
    if not isinstance(data, list):
        raise AnnotationError(f"{source}: expected a JSON list of records, got {type(data).__name__}")
    if not data:
        raise AnnotationError(f"{source}: the file holds no records")
    records: list[EvalRecord] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        where = f"{source}: record #{i}"
        if not isinstance(item, dict):
            raise AnnotationError(f"{where}: expected an object, got {type(item).__name__}")
        for name, types in _REQUIRED.items():
            if name not in item:
                raise AnnotationError(f"{where}: missing field {name!r}")
            # bool is an int subclass; an id of true/false is a mistake, not an id
            if not isinstance(item[name], types) or isinstance(item[name], bool):
                want = " or ".join(t.__name__ for t in types)
                raise AnnotationError(f"{where}: field {name!r} must be {want}, got {type(item[name]).__name__}")
        rid = item["id"]
        where = f"{source}: record #{i} (id {rid!r})"
        if str(rid) in seen:
            raise AnnotationError(f"{where}: duplicate id (first at record #{seen[str(rid)]})")
        seen[str(rid)] = i
        if not item["instruction"].strip():
            raise AnnotationError(f"{where}: empty 'instruction'")
        if "Thought: Do I need to use a tool?" not in item["output"]:
            raise AnnotationError(
                f"{where}: 'output' has no 'Thought: Do I need to use a tool?' line; "
                "it must be the reference continuation in GPT4Tools' ReAct format"
            )
        has_action = "Action:" in item["output"]
        has_input = "Action Input:" in item["output"]
        if has_action != has_input or item["output"].count("Action:") != item["output"].count("Action Input:"):
            raise AnnotationError(f"{where}: 'output' must pair every 'Action:' with an 'Action Input:'")
        inp = item.get("input", "")
        extra = {k: v for k, v in item.items() if k not in ("id", "instruction", "output", "input")}
        records.append(EvalRecord(rid, item["instruction"], item["output"], inp if isinstance(inp, str) else "", extra))
    return records


def load_records(path: str | Path, limit: int | None = None) -> list[EvalRecord]:
    """Read and validate an annotation file (a JSON list); ``limit`` keeps the first N records."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc.reason})") from None
    records = validate_records(data, str(path))
    return records[:limit] if limit else records


# ---- what a rendered prompt holds ---------------------------------------------------------------
@dataclass(frozen=True)
class PromptTool:
    """A tool as listed in a prompt: its GPT4Tools name, description and argument shape."""

    name: str
    description: str
    n_args: int = 1
    takes_image: bool = True


_TOOL_LINE_RE = re.compile(r"^> ([^:\n]+): (.*)$", re.M)
_ONE_OF_RE = re.compile(r"should be one of \[(.*?)\]\n")
_N_ARGS = {"two": 2, "three": 3, "four": 4}
_N_ARGS_RE = re.compile(r"comma separated string of (two|three|four)", re.I)


def _n_args(description: str) -> int:
    m = _N_ARGS_RE.search(description)
    return _N_ARGS[m.group(1).lower()] if m else 1


def prompt_tools(instruction: str) -> list[PromptTool]:
    """The tools listed in a GPT4Tools prompt, in prompt order.

    Names come from the ``should be one of [...]`` list when present (it is what the model may
    answer), descriptions from the ``> Name: description`` lines.
    """
    described = {m.group(1).strip(): m.group(2).strip() for m in _TOOL_LINE_RE.finditer(instruction)}
    names: list[str]
    m = _ONE_OF_RE.search(instruction)
    if m:
        listed = m.group(1)
        # Tool names contain no comma; split on the joiner and keep the described spelling.
        names = [n.strip() for n in listed.split(", ") if n.strip()]
    else:
        names = list(described)
    tools = []
    for name in names:
        desc = described.get(name, "")
        tools.append(PromptTool(name, desc, _n_args(desc), "image_path" in desc))
    return tools


def tool_choices(instruction: str) -> list:
    """The listed tools as ``efe_langchain.decoding.ToolChoice`` for constrained decoding."""
    from efe_langchain.decoding import ToolChoice

    return [ToolChoice(name=t.name, n_args=t.n_args, takes_image=t.takes_image) for t in prompt_tools(instruction)]


def prompt_images(instruction: str) -> list[str]:
    """Image paths the conversation so far mentions (uploads, earlier observations), in order."""
    return extract_image_paths(instruction)


@dataclass(frozen=True)
class PromptParts:
    """The variable parts of a rendered GPT4Tools prompt."""

    chat_history: str
    input: str
    scratchpad: str


_PARTS_RE = re.compile(
    r"Previous conversation:\n\n(?P<history>.*?)\n\nNew input: (?P<input>.*?)\n"
    r"GPT4Tools needs to use tools to observe images.*?Let's think step by step\.\n(?P<scratchpad>.*)\Z",
    re.S,
)


def split_instruction(instruction: str) -> PromptParts:
    """Chat history, new input and scratchpad of a prompt rendered with GPT4Tools' suffix."""
    m = _PARTS_RE.search(instruction)
    if not m:
        raise AnnotationError("instruction does not follow GPT4Tools' suffix layout (no 'Previous conversation:' ... 'New input:')")
    return PromptParts(m.group("history"), m.group("input"), m.group("scratchpad"))


_OBS_RE = re.compile(r"\nObservation:(.*?)(?=\nThought:|\Z)", re.S)


def reference_observations(output: str) -> list[str]:
    """The raw text after each ``Observation:`` in a reference, whitespace kept, in step order."""
    return [m.group(1) for m in _OBS_RE.finditer(output)]


def reference_tools(output: str) -> list[str]:
    """Tool names the reference calls, in order (empty for a no-tool record)."""
    return [a.strip() for a in re.findall(r"Action: (.*)", output)]


def n_args_by_name(tools: Sequence[PromptTool]) -> dict[str, int]:
    return {t.name: t.n_args for t in tools}
