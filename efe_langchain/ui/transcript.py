"""A conversation as the user sees it, read from the agent's LangChain messages.

The checkpointer stores the agent's messages; the page is redrawn from them on every Streamlit
rerun, after a reload and after a server restart. A live turn is drawn from the agent's events as
the same items (``agent_setup.turn_items``), so what the user watched and what they find after a
reload look the same.

* ``HumanMessage`` -> the user's text, or an upload when it is GPT4Tools' image turn;
* ``AIMessage`` with ``tool_calls`` -> one :class:`ToolStep` per call, running until its
  ``ToolMessage`` arrives with the output (text, and the image it names);
* any other ``AIMessage`` -> an :class:`Answer`, with the workspace images it names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from efe_langchain import react

__all__ = [
    "Upload",
    "UserText",
    "ToolStep",
    "Answer",
    "Turn",
    "build_transcript",
    "format_tool_input",
    "workspace_file",
    "workspace_images",
]

# GPT4Tools' image turn ("Provide an image named image/ab12cd34.png. Description: ... ").
_UPLOAD_RE = re.compile(r"^\s*Provide an image named\s+(\S+?\.png)\.?\s+Description:\s*(.*?)\s*(?:Understand the image using tools\.)?\s*$", re.S)


@dataclass
class Upload:
    path: str
    description: str = ""


@dataclass
class UserText:
    text: str


@dataclass
class ToolStep:
    """One tool call: what was asked and, once it ran, what came back."""

    call_id: str
    tool: str  # the name the user reads (the GPT4Tools name for our tools)
    tool_input: str
    output: str | None = None  # None while the tool runs
    images: list[str] = field(default_factory=list)
    failed: bool = False

    @property
    def done(self) -> bool:
        return self.output is not None

    def complete(self, output: str, *, failed: bool, artifact: Mapping | None, root: str | Path | None) -> None:
        """The tool returned: its text, and the workspace images it names (or its artifact does)."""
        self.output = output.strip()
        self.failed = failed or self.output.startswith("Error:")
        if self.failed:
            self.images = []
        elif _artifact_path(artifact):
            # Our tools say which file they wrote; the output text may also name the input image.
            self.images = workspace_images(_artifact_path(artifact), root)
        else:
            given = set(react.extract_image_paths(self.tool_input))
            self.images = [p for p in workspace_images(self.output, root) if p not in given]


@dataclass
class Answer:
    text: str
    images: list[str] = field(default_factory=list)


Item = Union[Upload, UserText, ToolStep, Answer]


@dataclass
class Turn:
    """One chat bubble: the user's (``role="user"``) or the assistant's."""

    role: str
    items: list[Item] = field(default_factory=list)


def workspace_file(rel: str, root: str | Path | None) -> Path | None:
    """The file a relative image path names inside the workspace, or None (missing, absolute,
    ``..``, or a symlink that leads out): text the user or the model typed never shows a file
    from elsewhere on the server."""
    if root is None or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        return None
    root = Path(root).resolve()
    path = (root / rel).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        return None
    return path if path.is_file() else None


def workspace_images(text: str, root: str | Path | None) -> list[str]:
    """The image paths named in ``text`` that are files inside the workspace, in order.

    A path the model made up (or one outside the workspace) is not shown: only files the tools
    really wrote or the user uploaded.
    """
    if not text or root is None:
        return []
    return [rel for rel in react.extract_image_paths(text) if workspace_file(rel, root) is not None]


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def format_tool_input(args: Any, react_text: str | None = None) -> str:
    """The ``Action Input`` the local model wrote, else the arguments joined GPT4Tools' way."""
    if react_text:
        parsed = react.parse(react_text)
        if isinstance(parsed, react.ToolCall):
            return parsed.tool_input
    if isinstance(args, Mapping):
        return ", ".join(v if isinstance(v, str) else json.dumps(v) for v in args.values())
    return "" if args is None else str(args)


def _artifact_path(artifact: Mapping | None) -> str:
    if isinstance(artifact, Mapping):
        path = artifact.get("path") or artifact.get("image_path")
        return path if isinstance(path, str) else ""
    return ""


def build_transcript(
    messages: Iterable[BaseMessage],
    workspace_root: str | Path | None,
    display_names: Mapping[str, str] | None = None,
) -> list[Turn]:
    """The conversation's messages as chat bubbles.

    ``display_names`` maps a tool's LangChain name to the name shown (its GPT4Tools name).
    """
    names = dict(display_names or {})
    turns: list[Turn] = []
    steps: dict[str, ToolStep] = {}

    def assistant() -> Turn:
        if not turns or turns[-1].role != "assistant":
            turns.append(Turn("assistant"))
        return turns[-1]

    for message in messages:
        if isinstance(message, HumanMessage):
            text = _text(message)
            m = _UPLOAD_RE.match(text)
            turns.append(Turn("user", [Upload(m.group(1), m.group(2).strip()) if m else UserText(text)]))
        elif isinstance(message, ToolMessage):
            step = steps.get(message.tool_call_id)
            if step is None:  # a result whose call we never saw: still worth showing
                step = ToolStep(message.tool_call_id, names.get(message.name or "", message.name or "tool"), "")
                assistant().items.append(step)
            artifact = getattr(message, "artifact", None)
            step.complete(
                _text(message),
                failed=getattr(message, "status", "success") == "error",
                artifact=artifact if isinstance(artifact, Mapping) else None,
                root=workspace_root,
            )
        elif isinstance(message, AIMessage):
            turn = assistant()
            react_text = (message.response_metadata or {}).get("react_text")
            for call in message.tool_calls:
                step = ToolStep(
                    call.get("id") or f"call_{len(steps)}",
                    names.get(call["name"], call["name"]),
                    format_tool_input(call.get("args"), react_text if len(message.tool_calls) == 1 else None),
                )
                steps[step.call_id] = step
                turn.items.append(step)
            text = _text(message).strip()
            if text and not message.tool_calls:
                turn.items.append(Answer(text, workspace_images(text, workspace_root)))
        # system messages are not part of what the user sees
    return turns
