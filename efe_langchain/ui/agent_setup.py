"""What the app builds and asks of the agent, without Streamlit: model choices, the tool list for
the sidebar, the agent over a workspace, and one turn as transcript items.

``app.py`` wraps the builders in ``st.cache_resource``; tests can call them directly.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from efe_langchain.ui.transcript import (
    Answer,
    Item,
    ToolStep,
    Upload,
    UserText,
    build_transcript,
    format_tool_input,
    workspace_images,
)

__all__ = [
    "MODEL_KINDS",
    "ModelChoice",
    "default_choice",
    "preset_tools",
    "default_max_tool_steps",
    "workspace_root",
    "conversations_db",
    "build_model",
    "ToolRow",
    "devices",
    "tool_rows",
    "TurnGate",
    "AppAgent",
    "build_agent",
    "TurnError",
    "turn_items",
    "upload",
    "history",
    "recent_conversations",
]

MODEL_KINDS = {
    "embedded": "Embedded: SmolLM2-135M-Instruct (+ EFE LoRA when installed)",
    "local": "Local model + LoRA adapters",
    "openai": "OpenAI model (needs an API key)",
}
CONVERSATIONS_FILE = "conversations.sqlite"
# Start-up settings ``efe app`` passes to the page (the GPT4Tools app's ``--load`` spec, and a
# bound on tool steps per turn); the sidebar starts from them and the user can change them.
LOAD_ENV = "EFE_LOAD"
MAX_STEPS_ENV = "EFE_MAX_TOOL_STEPS"
DEFAULT_MAX_TOOL_STEPS = 6


def preset_tools(spec: str | None = None) -> set[str] | None:
    """The tool names a ``--load`` spec (``"Image2Canny_cpu,ImageEditing_cpu"``) selects, or None
    (every tool that can run) when no spec is given; raises ValueError for an unknown name."""
    spec = os.environ.get(LOAD_ENV, "") if spec is None else spec
    if not spec.strip():
        return None
    from efe_langchain.tools.base import snake_name
    from efe_langchain.tools.registry import parse_spec

    return {snake_name(cls.spec().name) for cls, _ in parse_spec(spec)}


def default_max_tool_steps() -> int:
    try:
        return max(1, int(os.environ.get(MAX_STEPS_ENV, DEFAULT_MAX_TOOL_STEPS)))
    except ValueError:
        return DEFAULT_MAX_TOOL_STEPS


@dataclass(frozen=True)
class ModelChoice:
    """The model the user picked in the sidebar (hashable: it keys the model cache)."""

    kind: str = "embedded"
    base: str = ""
    adapters: tuple[str, ...] = ()
    openai_model: str = ""
    base_url: str = ""  # an OpenAI-compatible server (efe serve, vLLM...); "" = OpenAI's or $OPENAI_BASE_URL

    @classmethod
    def make(
        cls,
        kind: str,
        base: str = "",
        adapters: str | Sequence[str] = "",
        openai_model: str = "",
        base_url: str = "",
        *,
        has_key: bool = False,
    ) -> "ModelChoice":
        """A checked choice; raises ValueError with what is missing."""
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
        if isinstance(adapters, str):
            adapters = [a for a in (p.strip() for p in adapters.split(",")) if a]
        if kind == "embedded":
            return cls("embedded")
        if kind == "local":
            if not base.strip():
                raise ValueError("a local model needs a base model: a folder, a GGUF file or a hub id")
            return cls("local", base.strip(), tuple(adapters))
        if not has_key:
            raise ValueError("an OpenAI model needs an API key (set OPENAI_API_KEY or type one)")
        if not openai_model.strip():
            raise ValueError("name the OpenAI model, e.g. gpt-4o-mini")
        base_url = base_url.strip()
        if base_url and not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the server URL must start with http:// or https://, not {base_url!r}")
        return cls("openai", openai_model=openai_model.strip(), base_url=base_url)

    @property
    def label(self) -> str:
        if self.kind == "embedded":
            return "embedded SmolLM2-135M"
        if self.kind == "local":
            extra = f" + {len(self.adapters)} adapter{'s' if len(self.adapters) > 1 else ''}" if self.adapters else ""
            return f"{Path(self.base).name or self.base}{extra}"
        return f"{self.openai_model} at {self.base_url}" if self.base_url else f"OpenAI {self.openai_model}"


def default_choice() -> ModelChoice:
    return ModelChoice("embedded")


def workspace_root() -> Path:
    """Where images and conversations live: ``$EFE_WORKSPACE`` or ``./workspace``."""
    from efe_langchain.workspace import default_root

    root = default_root()
    (root / "image").mkdir(parents=True, exist_ok=True)
    return root


def conversations_db(root: str | Path) -> Path:
    return Path(root) / CONVERSATIONS_FILE


def build_model(choice: ModelChoice, openai_key: str | None = None) -> Any:
    """The loaded model: our ``LocalLLM`` for local choices (wrapped per agent so the decoding
    switch costs no reload), a ``ChatOpenAI`` for OpenAI."""
    if choice.kind == "embedded":
        from efe_langchain.llm import load_embedded_llm

        return load_embedded_llm()
    if choice.kind == "local":
        from efe_langchain.llm import LocalLLM

        return LocalLLM.from_pretrained(choice.base, adapters=list(choice.adapters))
    from langchain_openai import ChatOpenAI

    extra = {"base_url": choice.base_url} if choice.base_url else {}
    return ChatOpenAI(model=choice.openai_model, api_key=openai_key, temperature=0, **extra)


@dataclass(frozen=True)
class ToolRow:
    """One line of the sidebar's tool list."""

    name: str  # LangChain name, what load_tools takes
    title: str  # GPT4Tools name, what the user and the local model read
    available: bool
    reason: str = ""  # why it cannot run, and how to fix that
    backends: str = ""  # e.g. "opencv-canny (classical) · cpu"

    @property
    def detail(self) -> str:
        return self.backends if self.available else f"unavailable: {self.reason}"


def devices() -> list[str]:
    """The devices tools can run on here, CPU first."""
    found = ["cpu"]
    try:
        import torch

        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except Exception:  # torch missing or broken: the CPU still works for the classical tools
        pass
    return found


def tool_rows(device: str = "cpu") -> list[ToolRow]:
    """Every tool the registry knows, with the backends it would run on and why it cannot run."""
    from efe_langchain.tools.registry import list_tools

    rows = []
    for info in list_tools(device=device):
        labels = {b.name: f"{b.name} ({b.kind})" for b in info.backends}
        chosen = ", ".join(dict.fromkeys(labels.get(name, name) for name in info.chosen.values()))
        rows.append(
            ToolRow(
                name=info.name,
                title=info.gpt4tools_name or info.name,
                available=info.available,
                reason=info.reason,
                backends=f"{chosen} · {device}" if chosen else device,
            )
        )
    return rows


@dataclass
class TurnGate:
    """One per loaded model, shared by every agent built on it (tool sets differ per tab).

    The local model runs one turn at a time, so two browser tabs take turns instead of
    interleaving on one KV cache; ``running`` knows the turn in flight of each conversation.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: dict[str, threading.Event] = field(default_factory=dict)


@dataclass
class AppAgent:
    """The agent of one sidebar setting and the gate of its model.

    A turn runs on its own thread: Streamlit stops a script run whenever the user touches a
    widget, and a turn stopped halfway would leave a tool call without its result in the
    conversation; the page only watches the turn.
    """

    agent: Any
    gate: TurnGate = field(default_factory=TurnGate)

    @property
    def lock(self) -> threading.Lock:
        return self.gate.lock

    @property
    def model_name(self) -> str:
        """What the loaded model says it is (e.g. the embedded model and its adapter)."""
        model = self.agent.model
        inner = getattr(model, "llm", None)
        for obj, attr in ((inner, "model_name"), (model, "model_name"), (model, "model")):
            value = getattr(obj, attr, None)
            if isinstance(value, str) and value:
                return value
        return type(model).__name__

    @property
    def display_names(self) -> dict[str, str]:
        return {t.name: getattr(t, "gpt4tools_name", None) or t.name for t in self.agent.tools}

    def is_running(self, thread_id: str) -> bool:
        event = self.gate.running.get(thread_id)
        return event is not None and not event.is_set()

    def wait(self, thread_id: str, timeout: float | None = None) -> bool:
        """Until the turn in flight in this conversation ends; True when none is left."""
        event = self.gate.running.get(thread_id)
        return event is None or event.wait(timeout)


def build_agent(
    model: Any,
    choice: ModelChoice,
    tools: Sequence[str],
    constrained: bool,
    workspace_root: str | Path,
    device: str = "cpu",
    max_tool_steps: int = DEFAULT_MAX_TOOL_STEPS,
    gate: TurnGate | None = None,
) -> AppAgent:
    """An ``EFEAgent`` over the picked tools, with conversations in the workspace's SQLite file."""
    from efe_langchain.agent import EFEAgent
    from efe_langchain.tools.registry import load_tools
    from efe_langchain.workspace import Workspace

    workspace = Workspace(workspace_root)
    if choice.kind != "openai":
        from efe_langchain.chat_model import ChatEFE

        model = ChatEFE(llm=model, constrained=constrained)
    loaded = load_tools(list(tools), workspace=workspace, device=device) if tools else []
    agent = EFEAgent(
        model=model,
        tools=loaded,
        workspace=workspace,
        checkpointer=f"sqlite:{conversations_db(workspace_root)}",
        max_tool_steps=max_tool_steps,
    )
    return AppAgent(agent, gate or TurnGate())


class TurnError(Exception):
    """The agent ended a turn with an error message (already saved in the conversation or not)."""


def turn_items(app: AppAgent, text: str, thread_id: str) -> Iterator[list[Item]]:
    """One turn, as the transcript items each agent event creates or completes.

    A ``tool_call`` opens a :class:`ToolStep`; its ``tool_result`` completes it (results come in
    call order); a ``final`` answer is an :class:`Answer`; an ``error`` raises :class:`TurnError`
    after what came before it has been yielded. The turn runs on a worker thread and goes on to
    its end (and into the checkpointer) even if the caller stops reading.
    """
    if app.is_running(thread_id):
        raise TurnError("a turn is still running in this conversation; wait for it to finish")
    out: queue.Queue = queue.Queue()
    finished = threading.Event()
    app.gate.running[thread_id] = finished

    def work() -> None:
        try:
            with app.lock:
                for items in _items_of(app, text, thread_id):
                    # Copies: the worker completes a step while the page may still be drawing it.
                    out.put([dataclasses.replace(item) for item in items])
        except BaseException as exc:  # handed to the reader, who shows it in the chat
            out.put(exc)
        finally:
            finished.set()
            out.put(_DONE)

    threading.Thread(target=work, name=f"efe-turn-{thread_id}", daemon=True).start()
    while True:
        got = out.get()
        if got is _DONE:
            return
        if isinstance(got, BaseException):
            raise got
        yield got


_DONE = object()


def _items_of(app: AppAgent, text: str, thread_id: str) -> Iterator[list[Item]]:
    root = app.agent.workspace.root
    pending: list[ToolStep] = []
    for event in app.agent.stream(text, thread_id):
        if event.kind == "tool_call":
            react_text = (event.raw or {}).get("react_text")
            step = ToolStep(
                call_id=str((event.raw or {}).get("id") or f"call_{len(pending)}"),
                tool=event.tool or "tool",
                tool_input=format_tool_input(event.tool_input, react_text),
            )
            pending.append(step)
            yield [step]
        elif event.kind == "tool_result":
            step = next((s for s in pending if not s.done and s.tool == event.tool), None)
            if step is None:
                step = ToolStep(f"result_{len(pending)}", event.tool or "tool", "")
                pending.append(step)
            artifact = (event.raw or {}).get("artifact")
            step.complete(
                event.output or "",
                failed=(event.raw or {}).get("status") == "error",
                artifact=artifact if isinstance(artifact, dict) else None,
                root=root,
            )
            yield [step]
        elif event.kind == "final":
            yield [Answer(event.text or "", workspace_images(event.text or "", root))]
        else:
            raise TurnError(event.text or "the turn ended with an error")


def upload(app: AppAgent, data: bytes, thread_id: str) -> str:
    """Store an upload in the workspace (GPT4Tools naming and size) and tell the conversation."""
    with app.lock:
        return app.agent.upload(data, thread_id)


def recent_conversations(app: AppAgent, limit: int = 20) -> list[tuple[str, str]]:
    """``(thread_id, title)`` of the newest conversations in the checkpointer, newest first.

    The title is the first thing the user typed (or the first image they uploaded). Only a
    SQLite checkpointer can be listed; with another one the list is empty.
    """
    saver = app.agent.graph.checkpointer
    if not hasattr(saver, "cursor"):
        return []
    # Checkpoint ids are time-ordered UUIDs, so the largest is each thread's latest step.
    with saver.cursor(transaction=False) as cur:
        cur.execute(
            "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints WHERE checkpoint_ns = '' "
            "GROUP BY thread_id ORDER BY last DESC LIMIT ?",
            (int(limit),),
        )
        threads = [row[0] for row in cur.fetchall()]
    out = []
    for tid in threads:
        title = ""
        for turn in build_transcript(app.agent.history(tid), None):
            item = turn.items[0] if turn.role == "user" and turn.items else None
            if isinstance(item, UserText):
                title = item.text
                break
            if isinstance(item, Upload) and not title:
                title = f"[{item.path}]"
        out.append((tid, " ".join(title.split())[:60] or "(empty)"))
    return out


def history(app: AppAgent, thread_id: str) -> list:
    return app.agent.history(thread_id)
