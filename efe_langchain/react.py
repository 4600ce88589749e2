"""The GPT4Tools ReAct text protocol: render prompts and parse completions.

Training data, inference, the agent, the server and the evaluation all go through this module, so
that what a model is trained on is exactly what it sees at run time, byte for byte.

A step that used a tool is rendered into the scratchpad as
``Thought: Do I need to use a tool? Yes\\nAction: X\\nAction Input: Y\\nObservation: Z\\n``
and the model continues with ``Thought: ...``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

from efe_langchain.prompts import ToolSpec, load_prompt_layout

__all__ = [
    "THOUGHT_PREFIX",
    "THOUGHT_YES",
    "THOUGHT_NO",
    "ACTION_PREFIX",
    "ACTION_INPUT_PREFIX",
    "OBSERVATION_PREFIX",
    "FINAL_PREFIX",
    "STOP_SEQUENCES",
    "FORMAT_REMINDER",
    "ToolCall",
    "FinalAnswer",
    "ParseFailure",
    "Step",
    "render_tool_lines",
    "render_prompt",
    "render_image_turn",
    "render_history",
    "render_tool_step",
    "render_final_step",
    "render_scratchpad",
    "parse",
    "match_tool_name",
    "split_args",
    "extract_image_paths",
    "cut_hallucinated_observation",
    "listed_tool_names",
    "reorder_prompt_tools",
]

THOUGHT_PREFIX = "Thought: Do I need to use a tool?"
THOUGHT_YES = THOUGHT_PREFIX + " Yes"
THOUGHT_NO = THOUGHT_PREFIX + " No"
ACTION_PREFIX = "Action: "
ACTION_INPUT_PREFIX = "Action Input: "
OBSERVATION_PREFIX = "Observation:"
FINAL_PREFIX = "AI: "
# Generation stops here: the observation is the tool's to write, and a model that goes on to
# write the next human turn is imagining the conversation.
STOP_SEQUENCES = ("\nObservation:", "\n\tObservation:", "\nHuman:", "\nNew input:")
FORMAT_REMINDER = (
    "Invalid format: {error}. Answer in the format\n"
    "Thought: Do I need to use a tool? Yes\nAction: <one of [{tool_names}]>\nAction Input: <input>\n"
    "or\nThought: Do I need to use a tool? No\nAI: <your response>"
)

# A name part may hold balanced parentheses ("holiday(8).png", as browsers name a second
# download), but never starts with one, so "(see image/a.png)" still yields image/a.png.
_NAME_PART = r"[\w.-]+(?:\([\w.-]*\)[\w.-]*)*"
IMAGE_PATH_RE = re.compile(rf"(?<![\w/.-])((?:{_NAME_PART}/)*{_NAME_PART}\.(?:png|jpg|jpeg|webp|bmp))", re.I)


@dataclass(frozen=True)
class ToolCall:
    """The model asked to run ``tool`` with the raw comma-separated ``tool_input``."""

    tool: str
    tool_input: str
    log: str = ""


@dataclass(frozen=True)
class FinalAnswer:
    """The model answered the human."""

    text: str
    log: str = ""


@dataclass(frozen=True)
class ParseFailure:
    """The completion follows neither form; ``error`` says why, for the retry observation."""

    error: str
    log: str = ""


@dataclass(frozen=True)
class Step:
    """One finished tool step of the scratchpad."""

    tool: str
    tool_input: str
    observation: str = ""


ParseResult = Union[ToolCall, FinalAnswer, ParseFailure]


def _layout() -> dict:
    return load_prompt_layout()


def _as_pair(tool: ToolSpec | tuple[str, str] | object) -> tuple[str, str]:
    if isinstance(tool, tuple):
        return tool[0], tool[1]
    # A ToolSpec or one of our tools: both carry the GPT4Tools name and description.
    name = getattr(tool, "gpt4tools_name", None) or getattr(tool, "name")
    return name, getattr(tool, "description")


def render_tool_lines(tools: Iterable[ToolSpec | tuple[str, str]]) -> str:
    layout = _layout()
    return "\n".join(layout["tool_line"].format(name=n, description=d) for n, d in map(_as_pair, tools))


def render_prompt(
    tools: Sequence[ToolSpec | tuple[str, str]],
    chat_history: str = "",
    input: str = "",
    scratchpad: str = "",
) -> str:
    """The whole GPT4Tools instruction for one model call."""
    layout = _layout()
    pairs = [_as_pair(t) for t in tools]
    tool_names = layout["tool_names_joiner"].join(n for n, _ in pairs)
    # str.replace rather than format: tool descriptions and user text may contain braces.
    suffix = (
        layout["suffix"]
        .replace("{chat_history}", chat_history)
        .replace("{input}", input)
        .replace("{agent_scratchpad}", scratchpad)
    )
    return (
        layout["layout"]
        .replace("{prefix}", layout["prefix"])
        .replace("{tool_lines}", render_tool_lines(pairs))
        .replace("{format_instructions}", layout["format_instructions"].replace("{tool_names}", tool_names))
        .replace("{suffix}", suffix)
    )


def render_image_turn(image_path: str, caption: str) -> str:
    """The history entry GPT4Tools writes when a user uploads an image."""
    return _layout()["image_turn"].replace("{image_path}", image_path).replace("{caption}", caption)


def render_history(turns: Iterable[tuple[str, str]]) -> str:
    """``[("Human", text), ("AI", text), ...]`` as the ``Previous conversation`` block."""
    return "\n".join(f"{who}: {text}" for who, text in turns)


def render_tool_step(tool: str, tool_input: str, observation: str) -> str:
    return (
        _layout()["tool_step"]
        .replace("{tool_name}", tool)
        .replace("{tool_input}", tool_input)
        .replace("{observation}", observation)
    )


def render_final_step(answer: str) -> str:
    return _layout()["final_step"].replace("{answer}", answer)


def render_scratchpad(steps: Iterable[Step | tuple[str, str, str]]) -> str:
    """Finished tool steps, each followed by a newline, so the model continues with ``Thought:``."""
    out = []
    for step in steps:
        tool, tool_input, observation = (step.tool, step.tool_input, step.observation) if isinstance(step, Step) else step
        out.append(render_tool_step(tool, tool_input, observation) + "\n")
    return "".join(out)


def cut_hallucinated_observation(text: str) -> str:
    """Drop what the model wrote after it should have stopped (its own observation or next turn)."""
    cut = len(text)
    for marker in ("Observation:", "\nHuman:", "\nNew input:"):
        i = text.find(marker)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


_PAIRS = {'"': '"', "'": "'", "`": "`", "[": "]", "<": ">", "*": "*", "(": ")"}
_IMAGE_FULL_STOP_RE = re.compile(r"(\.(?:png|jpg|jpeg|webp|bmp))\.+$", re.I)


def _unquote(value: str) -> str:
    """Strip whitespace and quote/bracket pairs that wrap the whole value (only matched pairs,
    so ``image/a.png, "a red car"`` keeps its closing quote)."""
    value = value.strip()
    while len(value) >= 2 and _PAIRS.get(value[0]) == value[-1]:
        value = value[1:-1].strip()
    return value


def _clean(value: str) -> str:
    value = _unquote(value)
    # "image/a.png." : a sentence's full stop, not part of the file name.
    return _IMAGE_FULL_STOP_RE.sub(r"\1", value)


def match_tool_name(name: str, tool_names: Sequence[str], cutoff: float = 0.75) -> str | None:
    """The listed tool a near-miss name means: exact, then case and spacing, then closest spelling."""
    name = _clean(name).rstrip(".")
    if name in tool_names:
        return name
    norm = {re.sub(r"[\s_-]+", " ", t).strip().lower(): t for t in tool_names}
    key = re.sub(r"[\s_-]+", " ", name).strip().lower()
    if key in norm:
        return norm[key]
    close = difflib.get_close_matches(key, list(norm), n=1, cutoff=cutoff)
    return norm[close[0]] if close else None


_THOUGHT_RE = re.compile(r"Thought\s*:\s*(?:Do I need to use a tool\?)?\s*(Yes|No)?", re.I)
_ACTION_RE = re.compile(r"^\s*Action\s*\d*\s*:[ \t]*(.*)$", re.I | re.M)
_INPUT_RE = re.compile(r"^\s*Action\s*\d*\s*Input\s*\d*\s*:[ \t]*(.*?)\s*(?=\n\s*Thought\s*:|\Z)", re.I | re.M | re.S)
_FINAL_RE = re.compile(r"^\s*AI\s*:[ \t]*(.*)", re.M | re.S)


def parse(text: str, tool_names: Sequence[str] | None = None) -> ParseResult:
    """Read one completion as a tool call, a final answer or a failure, never raising.

    ``tool_names`` (the listed tools) turns a near-miss name into the right one and an unknown
    name into a failure the model is told about.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        return ParseFailure(f"expected text, got {type(text).__name__}", "")
    log = cut_hallucinated_observation(text).rstrip()
    body = log.strip()
    action = _ACTION_RE.search(body)
    final = _FINAL_RE.search(body)
    thought = _THOUGHT_RE.search(body)
    said_no = bool(thought and thought.group(1) and thought.group(1).lower() == "no")

    if final and (not action or final.start() < action.start() or said_no):
        # A second "Thought:" after the answer is the model starting an imagined next step.
        answer = re.split(r"\n\s*Thought\s*:", final.group(1), maxsplit=1)[0].strip()
        return FinalAnswer(answer, log) if answer else ParseFailure("the answer after 'AI:' is empty", log)
    if action:
        raw_name = action.group(1).strip()
        inp = _INPUT_RE.search(body, action.end())
        if not raw_name:
            return ParseFailure("no tool name after 'Action:'", log)
        if inp is None:
            return ParseFailure("'Action Input:' is missing after 'Action:'", log)
        tool_input = _clean(inp.group(1).strip().splitlines()[0] if inp.group(1).strip() else "")
        name = raw_name
        if tool_names is not None:
            matched = match_tool_name(raw_name, tool_names)
            if matched is None:
                return ParseFailure(f"{_clean(raw_name)!r} is not one of the listed tools", log)
            name = matched
        return ToolCall(_clean(name) if tool_names is None else name, tool_input, log)
    if said_no:
        # "No" and then plain words: the words are the answer.
        rest = body[thought.end():].strip()
        return FinalAnswer(rest, log) if rest else ParseFailure("no answer after 'Do I need to use a tool? No'", log)
    if thought is None and body and "Action" not in body:
        # Plain prose with no protocol words at all is an answer to the human.
        return FinalAnswer(body, log)
    return ParseFailure("expected 'Action:' with 'Action Input:', or 'AI:'", log)


def split_args(tool_input: str, n_args: int) -> list[str]:
    """GPT4Tools' comma convention: the first ``n_args - 1`` parts, then the rest (commas kept)."""
    if n_args <= 1:
        return [tool_input.strip()]
    return [_unquote(p) for p in tool_input.split(",", n_args - 1)]


def extract_image_paths(text: str) -> list[str]:
    """Image file names in the order they first appear (uploads, tool outputs)."""
    seen: dict[str, None] = {}
    for m in IMAGE_PATH_RE.finditer(text):
        seen.setdefault(m.group(1).rstrip("."), None)
    return list(seen)


_TOOL_LINE_RE = re.compile(r"^> ([^:\n]+): .*$", re.M)


def _tool_lines(prompt: str) -> list[re.Match]:
    return list(_TOOL_LINE_RE.finditer(prompt.split("\nNew input:", 1)[0]))


def listed_tool_names(prompt: str) -> list[str]:
    """The names of the ``> Name: description`` lines of a GPT4Tools prompt, in prompt order."""
    return [m.group(1).strip() for m in _tool_lines(prompt)]


def reorder_prompt_tools(prompt: str, order: Sequence[str]) -> str | None:
    """The same prompt with its tools listed in ``order`` (the ``> Name: description`` lines and the
    ``[A, B, C]`` name list both), or None when the prompt does not list exactly these tools in
    GPT4Tools' layout (a custom prompt is then left as it is).

    Small models prefer some list positions; scoring a choice under several orders cancels that.
    """
    order = list(order)
    lines = _tool_lines(prompt)
    names = [m.group(1).strip() for m in lines]
    if not lines or sorted(names) != sorted(order) or len(set(names)) != len(names):
        return None
    gaps = [prompt[a.end() : b.start()] for a, b in zip(lines, lines[1:])]
    if any(g.strip() for g in gaps):
        return None  # the tool lines are not one block
    by_name = {m.group(1).strip(): m.group(0) for m in lines}
    sep = gaps[0] if gaps else "\n"
    block = sep.join(by_name[n] for n in order)
    out = prompt[: lines[0].start()] + block + prompt[lines[-1].end() :]
    joiner = _layout()["tool_names_joiner"]
    listed = "[" + joiner.join(names) + "]"
    at = out.find(listed, lines[0].start() + len(block))
    if at == -1:
        return None
    return out[:at] + "[" + joiner.join(order) + "]" + out[at + len(listed) :]
