"""Drawing the transcript with Streamlit elements: chat bubbles, tool steps, images.

A saved conversation is drawn with :func:`draw_turns`; a turn that is running now is drawn by a
:class:`LiveTurn` that opens a ``st.status`` for a tool step when the model asks for the tool and
fills it in when the tool returns, so the user watches each step happen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import streamlit as st

from efe_langchain.ui.transcript import Answer, Item, ToolStep, Turn, Upload, UserText, workspace_file

__all__ = ["draw_turns", "draw_error", "LiveTurn", "AVATARS"]

AVATARS = {"user": "user", "assistant": "assistant"}
# Uploads and results are at most 512 px (GPT4Tools' size); a bubble shows them a bit smaller,
# and a tool step smaller still, since the answer usually shows the same image again.
IMAGE_WIDTH = 384
STEP_IMAGE_WIDTH = 352


def _image(root: Path, rel: str, caption: str | None = None, width: int = IMAGE_WIDTH) -> None:
    path = workspace_file(rel, root)
    if path is not None:
        st.image(str(path), caption=caption or rel, width=width)
    else:  # deleted since, or a name typed in the chat that is not a workspace image
        st.caption(f"({rel} is not an image in the workspace)")


def _step_label(step: ToolStep) -> str:
    if not step.done:
        return f"Running **{step.tool}**…"
    return f"{'Failed' if step.failed else 'Used'} **{step.tool}**"


def _step_state(step: ToolStep) -> str:
    return "running" if not step.done else ("error" if step.failed else "complete")


def _fill_step_input(step: ToolStep) -> None:
    st.markdown("**Input**")
    st.code(step.tool_input or "(none)", language=None, wrap_lines=True)


def _fill_step_output(step: ToolStep, root: Path) -> None:
    st.markdown("**Output**")
    if step.failed:
        st.error(step.output or "the tool failed")
    elif not step.images or step.output not in step.images:
        st.code(step.output or "(empty)", language=None, wrap_lines=True)
    for rel in step.images:
        _image(root, rel, width=STEP_IMAGE_WIDTH)


def _draw_item(item: Item, root: Path, expanded: bool) -> None:
    if isinstance(item, UserText):
        st.markdown(item.text)
    elif isinstance(item, Upload):
        _image(root, item.path, caption=f"Uploaded as {item.path}")
        if item.description:
            with st.expander("What the agent was told about it"):
                st.caption(item.description)
    elif isinstance(item, ToolStep):
        with st.status(_step_label(item), state=_step_state(item), expanded=expanded):
            _fill_step_input(item)
            if item.done:
                _fill_step_output(item, root)
    elif isinstance(item, Answer):
        st.markdown(item.text)
        for rel in item.images:
            _image(root, rel)


def draw_turns(turns: Sequence[Turn], root: Path, errors: dict[int, list[str]] | None = None) -> None:
    """The saved conversation; the last assistant turn keeps its tool steps open.

    ``errors``: what this browser session was told when a turn failed, by the index of the
    assistant turn it belongs to; an error the agent also saved as its answer is not repeated,
    and one whose turn left no message behind is drawn at the end.
    """
    errors = errors or {}
    last_assistant = max((i for i, t in enumerate(turns) if t.role == "assistant"), default=-1)
    for i, turn in enumerate(turns):
        with st.chat_message(turn.role, avatar=AVATARS.get(turn.role)):
            for item in turn.items:
                _draw_item(item, root, expanded=(i == last_assistant))
            if turn.role == "assistant":
                said = {item.text for item in turn.items if isinstance(item, Answer)}
                for text in errors.get(i, []):
                    if text not in said:
                        draw_error(text)
    orphans = [text for i in sorted(errors) if i >= len(turns) or turns[i].role != "assistant" for text in errors[i]]
    if orphans:
        with st.chat_message("assistant", avatar=AVATARS["assistant"]):
            for text in orphans:
                draw_error(text)


def draw_error(text: str) -> None:
    st.error(text, icon="⚠️")


class LiveTurn:
    """The assistant's bubble for the turn being answered now.

    Items arrive from :func:`~efe_langchain.ui.agent_setup.turn_items` as the agent's events do:
    a new :class:`ToolStep` opens a running status, the same step completed fills it in; an
    :class:`Answer` is written below.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.bubble = st.chat_message("assistant", avatar=AVATARS["assistant"])
        self._status: dict[str, object] = {}
        with self.bubble:
            self._thinking = st.empty()
        self.thinking("Thinking…")

    def thinking(self, text: str | None) -> None:
        """A line that says what the agent is doing between steps (None clears it)."""
        if text:
            self._thinking.caption(f"⏳ {text}")
        else:
            self._thinking.empty()

    def show(self, items: Sequence[Item]) -> None:
        with self.bubble:
            for item in items:
                if isinstance(item, ToolStep):
                    self._show_step(item)
                else:
                    _draw_item(item, self.root, expanded=True)

    def _show_step(self, step: ToolStep) -> None:
        status = self._status.get(step.call_id)
        if status is None:
            status = st.status(_step_label(step), state="running", expanded=True)
            self._status[step.call_id] = status
            with status:
                _fill_step_input(step)
            self.thinking(f"Running {step.tool}…")
            if not step.done:
                return
        with status:
            _fill_step_output(step, self.root)
        status.update(label=_step_label(step), state=_step_state(step), expanded=True)
        self.thinking("Thinking…")

    def error(self, text: str) -> None:
        self.thinking(None)
        with self.bubble:
            draw_error(text)

    def done(self) -> None:
        self.thinking(None)
