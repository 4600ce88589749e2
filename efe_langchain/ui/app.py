"""The EFE Streamlit page: chat with your images and watch the agent use its tools.

Run it with ``efe app`` (or ``streamlit run apps/streamlit_app.py`` in a checkout).

Where things live:

* images: the workspace folder (``$EFE_WORKSPACE``, default ``./workspace``), named and resized by
  the GPT4Tools rules;
* conversations: a SQLite checkpointer in that folder, one LangGraph thread per conversation; the
  thread id is in the page's URL (``?thread=...``), so a reload or a server restart brings the
  same conversation back, and the "New conversation" button starts another;
* the model and the agent: built once per choice with ``st.cache_resource`` and shared by every
  browser session of the server.

Nothing the user does or a tool returns may crash the page: every failure becomes an error
message in the chat.
"""

from __future__ import annotations

import os
import re
import traceback
import uuid
from pathlib import Path

import streamlit as st

from efe_langchain.ui import agent_setup
from efe_langchain.ui.agent_setup import ModelChoice
from efe_langchain.ui.render import AVATARS, LiveTurn, draw_turns
from efe_langchain.ui.transcript import build_transcript

__all__ = ["main"]

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp"]
_THREAD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EXAMPLES = "Detect the edges of this image · What is in the image? · Remove the background"


# -- cached resources (shared by all sessions of this server) --------------------------------------
@st.cache_resource(show_spinner="Loading the model (first start: a minute or so)…", max_entries=2)
def _cached_model(choice: ModelChoice, openai_key: str):
    return agent_setup.build_model(choice, openai_key=openai_key or None)


@st.cache_resource(show_spinner=False, max_entries=2)
def _cached_gate(choice: ModelChoice):
    return agent_setup.TurnGate()


@st.cache_resource(show_spinner="Checking which tools can run here…")
def _cached_tool_rows(device: str):
    return agent_setup.tool_rows(device)


@st.cache_resource(show_spinner="Preparing the agent and its tools…", max_entries=4)
def _cached_agent(
    choice: ModelChoice,
    openai_key: str,
    tools: tuple[str, ...],
    constrained: bool,
    workspace_root: str,
    device: str,
    max_tool_steps: int,
):
    model = _cached_model(choice, openai_key)
    return agent_setup.build_agent(
        model, choice, tools, constrained, workspace_root, device, max_tool_steps, gate=_cached_gate(choice)
    )


# -- the conversation id in the URL ---------------------------------------------------------------
def _thread_id() -> str:
    tid = st.query_params.get("thread", "")
    if not _THREAD_RE.match(tid or ""):
        tid = uuid.uuid4().hex[:16]
        st.query_params["thread"] = tid
    return tid


def _new_conversation() -> None:
    st.query_params["thread"] = uuid.uuid4().hex[:16]


def _open_conversation(key: str) -> None:
    st.query_params["thread"] = st.session_state[key]


def _conversation_picker(app: agent_setup.AppAgent, thread_id: str) -> None:
    """Earlier conversations of this workspace, so one is never lost with its URL."""
    try:
        convs = dict(agent_setup.recent_conversations(app))
    except Exception as exc:  # an unreadable list must not take the page down
        st.caption(f"Earlier conversations cannot be listed: {exc}")
        return
    if thread_id not in convs:
        convs = {thread_id: "(this new conversation)", **convs}
    if len(convs) < 2:
        return
    key = f"conversations-{thread_id}"
    st.selectbox(
        "Earlier conversations",
        list(convs),
        index=list(convs).index(thread_id),
        format_func=lambda tid: convs[tid],
        key=key,
        on_change=_open_conversation,
        args=(key,),
    )


def _errors(thread_id: str) -> dict[int, list[str]]:
    """Errors shown in the chat, by the assistant turn they belong to (this browser session only)."""
    return st.session_state.setdefault("errors", {}).setdefault(thread_id, {})


# -- sidebar --------------------------------------------------------------------------------------
def _model_form() -> tuple[ModelChoice, str]:
    applied: ModelChoice = st.session_state.setdefault("model_choice", agent_setup.default_choice())
    env_key = os.environ.get("OPENAI_API_KEY", "")
    with st.expander(f"Model: {applied.label}", expanded=False):
        with st.form("model"):
            kinds = list(agent_setup.MODEL_KINDS)
            kind = st.radio(
                "Model",
                kinds,
                index=kinds.index(applied.kind),
                format_func=agent_setup.MODEL_KINDS.get,
                label_visibility="collapsed",
            )
            base = st.text_input("Local base model (folder, GGUF file or hub id)", value=applied.base)
            adapters = st.text_input(
                "LoRA adapter folder(s), comma separated", value=", ".join(applied.adapters)
            )
            key = st.text_input(
                "OpenAI API key", type="password", value="",
                placeholder="set from OPENAI_API_KEY" if env_key else "sk-…",
            )
            openai_model = st.text_input("OpenAI model", value=applied.openai_model or "gpt-4o-mini")
            base_url = st.text_input(
                "OpenAI-compatible server URL (optional)",
                value=applied.base_url,
                placeholder=os.environ.get("OPENAI_BASE_URL", "") or "e.g. http://127.0.0.1:8000/v1 (efe serve)",
            )
            if st.form_submit_button("Use this model"):
                try:
                    new = ModelChoice.make(kind, base, adapters, openai_model, base_url, has_key=bool(key or env_key))
                except ValueError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["model_choice"] = applied = new
                    if key:
                        st.session_state["openai_key"] = key
    return applied, st.session_state.get("openai_key") or env_key


def _tools_picker(rows: list[agent_setup.ToolRow]) -> tuple[str, ...]:
    available = [r for r in rows if r.available]
    try:
        preset = agent_setup.preset_tools()
    except ValueError as exc:
        st.error(f"{agent_setup.LOAD_ENV}: {exc}")
        preset = None
    picked: list[str] = []
    with st.expander(f"Tools: {len(available)} of {len(rows)} can run here", expanded=False):
        st.caption("Untick a tool to keep it from the agent. Greyed tools cannot run on this machine; hover for why.")
        for row in rows:
            on = st.checkbox(
                row.title,
                value=row.available and (preset is None or row.name in preset),
                key=f"tool-{row.name}",
                disabled=not row.available,
                help=row.detail,
            )
            st.caption(row.detail)
            if on and row.available:
                picked.append(row.name)
    return tuple(picked)


# -- the turn -------------------------------------------------------------------------------------
def _run_turn(app: agent_setup.AppAgent, thread_id: str, text: str, root: Path, n_turns: int) -> None:
    with st.chat_message("user", avatar=AVATARS["user"]):
        st.markdown(text)
    live = LiveTurn(root)
    try:
        if app.lock.locked():
            live.thinking("Waiting for another conversation's turn to finish…")
        for items in agent_setup.turn_items(app, text, thread_id):
            live.show(items)
    except Exception as exc:  # the page must survive whatever the model or a tool does
        msg = str(exc) if isinstance(exc, agent_setup.TurnError) else f"The agent stopped: {type(exc).__name__}: {exc}"
        live.error(msg)
        _errors(thread_id).setdefault(n_turns + 1, []).append(msg)
        if not isinstance(exc, agent_setup.TurnError):
            print(traceback.format_exc(), flush=True)
    else:
        live.done()


def _handle_upload(app: agent_setup.AppAgent, upload, thread_id: str) -> None:
    seen = st.session_state.setdefault("uploads_done", set())
    key = (thread_id, upload.file_id)
    if key in seen:
        return
    seen.add(key)
    try:
        with st.spinner(f"Storing {upload.name} and describing it for the agent…"):
            agent_setup.upload(app, upload.getvalue(), thread_id)
    except Exception as exc:
        st.session_state.setdefault("upload_error", {})[thread_id] = f"Could not use {upload.name}: {exc}"


def main() -> None:
    st.set_page_config(page_title="EFE: chat with your images", page_icon="🖼️", layout="wide")
    root = agent_setup.workspace_root()
    thread_id = _thread_id()

    with st.sidebar:
        st.title("EFE")
        st.caption("Chat with your images: a local LLM uses visual tools, step by step.")
        st.button("New conversation", on_click=_new_conversation, type="primary", width="stretch")
        upload = st.file_uploader("Upload an image", type=UPLOAD_TYPES, key=f"upload-{thread_id}")
        choice, openai_key = _model_form()
        device = st.selectbox("Device for the tools", agent_setup.devices())
        try:
            rows = _cached_tool_rows(device)
        except Exception as exc:
            rows = []
            st.error(f"Could not list the tools: {exc}")
        tools = _tools_picker(rows)
        constrained = st.toggle(
            "Constrained decoding",
            value=True,
            disabled=choice.kind == "openai",
            help="Local models only: the tool name, the image path and the number of arguments are "
            "chosen among what the prompt allows, inside generation. Free text stays free.",
        )
        max_steps = st.number_input(
            "Tool steps per turn, at most",
            min_value=1,
            max_value=20,
            value=agent_setup.default_max_tool_steps(),
            help="A model that keeps calling tools is stopped after this many steps.",
        )
        st.caption(f"Workspace: `{root}`  \nConversation: `{thread_id}`")

    agent = None
    try:
        agent = _cached_agent(choice, openai_key, tools, constrained and choice.kind != "openai", str(root), device, int(max_steps))
    except Exception as exc:
        st.error(f"Could not load {choice.label}: {type(exc).__name__}: {exc}")
        print(traceback.format_exc(), flush=True)

    if agent is not None:
        with st.sidebar:
            st.caption(f"Model loaded: {agent.model_name}")
            _conversation_picker(agent, thread_id)
    if agent is not None and upload is not None:
        _handle_upload(agent, upload, thread_id)

    display_names = {r.name: r.title for r in rows}
    if agent is not None:
        display_names.update(agent.display_names)
    messages = []
    if agent is not None:
        try:
            messages = agent_setup.history(agent, thread_id)
        except Exception as exc:
            st.error(f"Could not read this conversation back: {exc}")
    turns = build_transcript(messages, root, display_names)
    if agent is not None and agent.is_running(thread_id):
        # The user touched a widget (or reloaded) while a turn ran: it goes on without this page.
        draw_turns(turns, root, _errors(thread_id))
        with st.spinner("The agent is still working on your last message…"):
            while not agent.wait(thread_id, timeout=1.0):
                pass
        st.rerun()
    if not turns:
        st.info(f"Upload an image in the sidebar, then ask for something, for example: {EXAMPLES}.")
    draw_turns(turns, root, _errors(thread_id))
    upload_error = st.session_state.get("upload_error", {}).pop(thread_id, None)
    if upload_error:
        st.error(upload_error)

    prompt = st.chat_input(
        "Ask about your image, e.g. Detect the edges of this image",
        disabled=agent is None,
        # No second message while a turn runs: it would stop this script run mid-turn.
        submit_mode="disable",
    )
    if prompt and agent is not None:
        _run_turn(agent, thread_id, prompt, root, len(turns))


if __name__ == "__main__":
    main()
