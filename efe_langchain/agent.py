"""The EFE agent: ``langchain.agents.create_agent`` with memory, history trimming and safe tools.

``create_efe_agent`` returns the compiled LangGraph agent, for code that speaks LangGraph.
``EFEAgent`` wraps it for the CLI and the Streamlit app: image uploads, step events for a UI, a
string in and a string out, and conversation history by thread id.

Memory is a LangGraph checkpointer: ``"memory"`` (in-process, the default), ``"sqlite:PATH"`` (a
conversation outlives the process: start again with the same file and thread id and it goes on),
or any saver object. The model sees a window of that memory cut to its context by a token budget,
whole turns at a time, so no message is ever cut in half; the checkpoint keeps everything.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse, ToolErrorMiddleware
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError

from efe_langchain import react
from efe_langchain.chat_model import ChatEFE, messages_to_prompt

__all__ = [
    "create_efe_agent",
    "EFEAgent",
    "AgentEvent",
    "TrimHistoryMiddleware",
    "ToolStepLimitMiddleware",
    "make_checkpointer",
    "trim_turns",
    "image_turn_messages",
]

DESCRIBE_TOOL = "Get Photo Description"
# Room left in the context for the step the model writes.
DEFAULT_GENERATION_RESERVE = 256
DEFAULT_MAX_TOOL_STEPS = 6

_IMAGE_TURN_RE = re.compile(r"^\s*Provide an image named (\S+?)\.\s+Description:", re.I)


# -- checkpointers ------------------------------------------------------------------------------
def make_checkpointer(spec: str | BaseCheckpointSaver | None) -> BaseCheckpointSaver | None:
    """``"memory"``, ``"sqlite:PATH"`` (or a path ending in .db/.sqlite), a saver, or None."""
    if spec is None or isinstance(spec, BaseCheckpointSaver):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"checkpointer must be 'memory', 'sqlite:PATH' or a saver, not {type(spec).__name__}")
    spec = os.fspath(spec)
    if spec == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver()
    if spec.startswith("sqlite:") or spec.endswith((".db", ".sqlite", ".sqlite3")):
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = Path(spec.removeprefix("sqlite:")).expanduser()
        if str(path) in ("", "."):
            raise ValueError("sqlite checkpointer needs a file: 'sqlite:PATH'")
        path.parent.mkdir(parents=True, exist_ok=True)
        # The UI runs turns on worker threads; SqliteSaver serialises access with its own lock.
        conn = sqlite3.connect(str(path), check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        return saver
    raise ValueError(f"unknown checkpointer {spec!r}: use 'memory' or 'sqlite:PATH'")


# -- history trimming ---------------------------------------------------------------------------
def _text(m: BaseMessage) -> str:
    return m.text if isinstance(m.text, str) else str(m.text())


def _image_turn_path(turn: Sequence[BaseMessage]) -> str | None:
    """The image a turn uploads, if it is a GPT4Tools image turn."""
    if turn and isinstance(turn[0], HumanMessage):
        m = _IMAGE_TURN_RE.match(_text(turn[0]))
        if m:
            return m.group(1)
    return None


def split_turns(messages: Sequence[BaseMessage]) -> tuple[list[BaseMessage], list[list[BaseMessage]]]:
    """Leading system messages, then turns: each starts at a human message and runs to the next."""
    lead: list[BaseMessage] = []
    turns: list[list[BaseMessage]] = []
    for m in messages:
        if isinstance(m, HumanMessage) or (turns == [] and not isinstance(m, SystemMessage)):
            turns.append([m])
        elif turns:
            turns[-1].append(m)
        else:
            lead.append(m)
    return lead, turns


_DERIVED_RE = re.compile(r"^(?P<dir>(?:[\w.-]+/)*)[0-9a-f]{4}_[\w-]+?_(?P<prev>[\w-]+)_(?P<org>[\w-]+)\.png$")


def _with_sources(paths: Sequence[str]) -> set[str]:
    """Paths plus the uploads a GPT4Tools output name comes from (``<4hex>_<tag>_<prev>_<org>.png``)."""
    out = set(paths)
    for p in paths:
        m = _DERIVED_RE.match(p)
        if m:
            out.update(f"{m['dir']}{m[k]}.png" for k in ("prev", "org"))
    return out


def trim_turns(
    messages: Sequence[BaseMessage],
    budget: int,
    cost: Callable[[Sequence[BaseMessage]], int],
) -> list[BaseMessage]:
    """The newest whole turns whose cost fits ``budget``, plus the image turns they still need.

    Never cuts a message or a turn in half: the current turn (the last human message and the tool
    steps after it) is always kept, even over budget. Older turns are added newest first while
    they fit; when one does not fit, nothing older is added, except the upload turns of images
    the kept turns name (and the latest upload, which "this image" refers to), if they fit.
    """
    lead, turns = split_turns(messages)
    if not turns:
        return list(messages)
    used = cost(lead) + cost(turns[-1])
    keep = {len(turns) - 1}
    uploads = {i: p for i, t in enumerate(turns) if (p := _image_turn_path(t))}
    for i in range(len(turns) - 2, -1, -1):
        c = cost(turns[i])
        if used + c > budget:
            break
        keep.add(i)
        used += c

    wanted_paths = _with_sources(react.extract_image_paths("\n".join(_text(m) for i in keep for m in turns[i])))
    latest_upload = max(uploads, default=None)
    # Newest first: a path uploaded twice resolves to its latest upload.
    for i in sorted(uploads, reverse=True):
        if i in keep or not (uploads[i] in wanted_paths or i == latest_upload):
            continue
        c = cost(turns[i])
        if used + c <= budget:
            keep.add(i)
            used += c
        wanted_paths.discard(uploads[i])
    return lead + [m for i in sorted(keep) for m in turns[i]]


def _token_counter(model: BaseChatModel) -> Callable[[str], int]:
    tokenizer = getattr(getattr(model, "llm", None), "tokenizer", None)
    if tokenizer is not None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
    # Without a tokenizer: about four characters a token for English, rounded up to be safe.
    return lambda text: (len(text) + 3) // 4


def _context_window(model: BaseChatModel) -> int | None:
    llm = getattr(model, "llm", None)
    for obj in (llm, getattr(llm, "model", None), getattr(getattr(llm, "model", None), "config", None)):
        for attr in ("max_context_tokens", "context_length", "max_position_embeddings"):
            value = getattr(obj, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


class TrimHistoryMiddleware(AgentMiddleware):
    """Show the model only the newest whole turns that fit ``max_tokens`` (the state keeps all).

    The cost of a turn is what the model sees of it: for ``ChatEFE`` the ``Human:``/``AI:`` lines
    of the GPT4Tools history (tool steps of earlier turns are not rendered); for other chat
    models every message's text and tool-call arguments.
    """

    def __init__(
        self,
        max_tokens: int,
        count_tokens: Callable[[str], int],
        generation_reserve: int = DEFAULT_GENERATION_RESERVE,
    ) -> None:
        super().__init__()
        self.max_tokens = int(max_tokens)
        self.count_tokens = count_tokens
        self.generation_reserve = int(generation_reserve)
        self._fixed: dict[tuple, int] = {}

    def _cost_fn(self, model: Any) -> Callable[[Sequence[BaseMessage]], int]:
        if isinstance(model, ChatEFE):

            def cost(msgs: Sequence[BaseMessage]) -> int:
                lines = []
                for m in msgs:
                    if isinstance(m, HumanMessage):
                        lines.append(f"Human: {_text(m)}")
                    elif isinstance(m, AIMessage) and _text(m).strip():
                        lines.append(f"AI: {_text(m).strip()}")
                    elif isinstance(m, ToolMessage):
                        # Counted as if rendered, because the current turn's steps are.
                        lines.append(f"Observation: {_text(m)}")
                return self.count_tokens("\n".join(lines) + "\n") if lines else 0

            return cost

        def cost(msgs: Sequence[BaseMessage]) -> int:
            total = 0
            for m in msgs:
                total += self.count_tokens(_text(m)) + 4
                for call in getattr(m, "tool_calls", None) or []:
                    total += self.count_tokens(f"{call['name']} {call['args']}")
            return total

        return cost

    def trim(self, request: ModelRequest) -> list[BaseMessage]:
        model = request.model
        # The fixed part of the prompt (GPT4Tools prefix and tool lines) is paid on every call;
        # it only changes with the tools, so it is counted once per tool set.
        if isinstance(model, ChatEFE):
            key = tuple(getattr(t, "name", None) or str(t) for t in request.tools)
            if key not in self._fixed:
                self._fixed[key] = self.count_tokens(messages_to_prompt([HumanMessage("")], request.tools))
            fixed = self._fixed[key]
        else:
            fixed = self.count_tokens(request.system_message.text if request.system_message else "")
        budget = self.max_tokens - self.generation_reserve - fixed
        return trim_turns(request.messages, budget, self._cost_fn(model))

    def _trimmed(self, request: ModelRequest) -> ModelRequest:
        trimmed = self.trim(request)
        return request.override(messages=trimmed) if len(trimmed) != len(request.messages) else request

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]):
        return handler(self._trimmed(request))

    async def awrap_model_call(self, request: ModelRequest, handler):
        return await handler(self._trimmed(request))


_ACKNOWLEDGES_FAILURE = re.compile(
    r"\b(could ?n[o']t|can ?n[o']t|unable|not able|sorry|failed|fails|error|did ?n[o']t work|not possible|impossible)\b", re.I
)


class ToolStepLimitMiddleware(AgentMiddleware):
    """End a turn with a plain answer when the model loops.

    Two rules: after ``max_steps`` tool results in one turn, and (``stop_on_repeat``) when the
    model asks for exactly the call it just made, whose result it already has. Small models do
    the latter a lot; running the tool again would only show them the same observation. And a
    final answer that pastes a tool's ``Error: ...`` into a sentence is replaced by a plain "I could
    not do that. <the error>", as is any answer to a failed tool that does not say it failed.
    """

    def __init__(self, max_steps: int = DEFAULT_MAX_TOOL_STEPS, stop_on_repeat: bool = True) -> None:
        super().__init__()
        self.max_steps = int(max_steps)
        self.stop_on_repeat = stop_on_repeat

    def _before(self, request: ModelRequest) -> tuple[AIMessage | None, list, list]:
        msgs = request.messages
        last_human = max((i for i, m in enumerate(msgs) if isinstance(m, HumanMessage)), default=-1)
        turn = msgs[last_human + 1 :]
        results = [m for m in turn if isinstance(m, ToolMessage)]
        previous = [c for m in turn if isinstance(m, AIMessage) for c in m.tool_calls]
        if len(results) >= self.max_steps:
            stop = AIMessage(
                content=f"I stopped after {len(results)} tool step{'' if len(results) == 1 else 's'} without a final answer. "
                f"The last tool result was: {_text(results[-1]).strip()}",
                response_metadata={"stopped": "max_tool_steps"},
            )
            return stop, previous, results
        return None, previous, results

    def _after(self, response: Any, previous: list, results: list) -> Any:
        if not results:
            return response
        new = _response_message(response)
        if new is None:
            return response
        last = _text(results[-1]).strip()
        failed = last.startswith("Error") or getattr(results[-1], "status", None) == "error"
        if self.stop_on_repeat and previous and new.tool_calls and all(_same_call(c, previous[-1]) for c in new.tool_calls):
            return AIMessage(
                content=f"I could not do that. {last}" if failed else last,
                response_metadata={**new.response_metadata, "stopped": "repeated_tool_call"},
            )
        # A small model copies a failed tool's error into a success sentence ("The result is ready:
        # Error: ...") or answers past it ("Result: Result:"): the user must read that it failed, and why.
        own_words = re.sub(r"Error:.*", "", _text(new), flags=re.S)  # what the model said besides pasting the error
        if failed and not new.tool_calls and not _ACKNOWLEDGES_FAILURE.search(own_words):
            return AIMessage(
                content=f"I could not do that. {last}",
                response_metadata={**new.response_metadata, "rewritten": "tool_error_echoed"},
            )
        return response

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]):
        stop, previous, results = self._before(request)
        return stop if stop is not None else self._after(handler(request), previous, results)

    async def awrap_model_call(self, request: ModelRequest, handler):
        stop, previous, results = self._before(request)
        return stop if stop is not None else self._after(await handler(request), previous, results)


def _response_message(response: Any) -> AIMessage | None:
    if isinstance(response, AIMessage):
        return response
    result = getattr(response, "result", None) or getattr(getattr(response, "model_response", None), "result", None)
    return next((m for m in reversed(result or []) if isinstance(m, AIMessage)), None)


def _same_call(a: dict, b: dict) -> bool:
    return a.get("name") == b.get("name") and a.get("args") == b.get("args")


def _tool_error_text(exc: Exception, request: Any) -> str:
    name = request.tool_call.get("name", "the tool") if hasattr(request, "tool_call") else "the tool"
    # The model reads this as the observation and can try another input.
    return f"Error: {name} failed: {type(exc).__name__}: {exc}"


def _as_chat_model(model: Any, constrained: bool | None = None) -> BaseChatModel:
    if model is None or model == "embedded":
        from efe_langchain.llm import load_embedded_llm

        return ChatEFE(llm=load_embedded_llm(), constrained=constrained)
    if isinstance(model, (str, os.PathLike)):
        from efe_langchain.llm import LocalLLM

        return ChatEFE(llm=LocalLLM.from_pretrained(os.fspath(model)), constrained=constrained)
    if isinstance(model, BaseChatModel):
        return model
    if isinstance(model, BaseLLM) or hasattr(model, "react_step"):
        return ChatEFE(llm=model, constrained=constrained)
    raise TypeError(f"model must be a chat model, an LLM, a path or 'embedded', not {type(model).__name__}")


def create_efe_agent(
    model: Any = None,
    tools: Sequence[Any] | None = None,
    *,
    checkpointer: str | BaseCheckpointSaver | None = "memory",
    max_context_tokens: int | None = None,
    max_tool_steps: int = DEFAULT_MAX_TOOL_STEPS,
    constrained: bool | None = None,
    middleware: Sequence[AgentMiddleware] = (),
):
    """The compiled LangGraph ReAct agent over ``model`` and ``tools``, with memory.

    ``model``: a ``ChatEFE``, any chat model (``ChatOpenAI`` works the same way), a LangChain LLM
    or our ``LocalLLM`` (wrapped in ``ChatEFE``), a model path, or None for the embedded model.
    ``tools``: None loads every tool that can run here. ``max_context_tokens``: the model's
    window (None: read from the model when it says, else no trimming). Tool exceptions come back
    to the model as an ``Error: ...`` observation.
    """
    chat = _as_chat_model(model, constrained)
    if tools is None:
        tools = _default_tools()
    window = max_context_tokens or _context_window(chat)
    stack: list[AgentMiddleware] = [ToolErrorMiddleware(on_error=_tool_error_text)]
    if max_tool_steps:
        stack.append(ToolStepLimitMiddleware(max_tool_steps))
    if window:
        # Room for what the model writes: its own token limit when it has one.
        wanted = getattr(getattr(chat, "llm", None), "max_new_tokens", None) or DEFAULT_GENERATION_RESERVE
        reserve = min(int(wanted), window // 4)
        stack.append(TrimHistoryMiddleware(window, _token_counter(chat), reserve))
    stack.extend(middleware)
    return create_agent(chat, list(tools), middleware=stack, checkpointer=make_checkpointer(checkpointer))


def _default_tools(workspace: Any = None) -> list[Any]:
    try:
        from efe_langchain.tools.registry import load_tools
    except ImportError:
        return []
    try:
        return list(load_tools(workspace=workspace) if workspace is not None else load_tools())
    except TypeError:
        return list(load_tools())


# -- the friendly wrapper -----------------------------------------------------------------------
@dataclass
class AgentEvent:
    """One step of a turn, for a UI.

    ``kind``: ``"tool_call"`` (``tool``, ``tool_input``), ``"tool_result"`` (``tool``, ``output``,
    ``image`` when the output names a workspace image), ``"final"`` (``text``) or ``"error"``
    (``text``; the turn ended, the session goes on).
    """

    kind: Literal["tool_call", "tool_result", "final", "error"]
    tool: str | None = None
    tool_input: Any = None
    output: str | None = None
    image: str | None = None
    text: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def image_turn_messages(image_path: str, caption: str) -> list[BaseMessage]:
    """The GPT4Tools upload turn as a human and an AI message ("Provide an image named ...")."""
    caption = " ".join(caption.split()) or "an uploaded image"
    if caption[-1] not in ".!?":
        caption += "."
    turn = react.render_image_turn(image_path, caption)
    human, _, ai = turn.partition("\nAI: ")
    return [HumanMessage(human.removeprefix("Human: ")), AIMessage(ai)]


class EFEAgent:
    """A chat session API over ``create_efe_agent`` for the CLI and the Streamlit app.

    .. code-block:: python

        agent = EFEAgent(checkpointer="sqlite:chats.db")
        path = agent.upload("cat.jpg", thread_id="t1")    # -> "image/1a2b3c4d.png"
        print(agent.invoke("Find the edges of the image", thread_id="t1"))
        for event in agent.stream("Now describe it", thread_id="t1"):
            ...
    """

    def __init__(
        self,
        model: Any = None,
        tools: Sequence[Any] | None = None,
        workspace: Any = None,
        checkpointer: str | BaseCheckpointSaver | None = "memory",
        *,
        max_context_tokens: int | None = None,
        max_tool_steps: int = DEFAULT_MAX_TOOL_STEPS,
        constrained: bool | None = None,
        middleware: Sequence[AgentMiddleware] = (),
    ) -> None:
        from efe_langchain.workspace import Workspace

        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.model = _as_chat_model(model, constrained)
        self.tools = list(tools) if tools is not None else _default_tools(self.workspace)
        self.max_tool_steps = max_tool_steps
        self.graph = create_efe_agent(
            self.model,
            self.tools,
            checkpointer=checkpointer,
            max_context_tokens=max_context_tokens,
            max_tool_steps=max_tool_steps,
            middleware=middleware,
        )

    @staticmethod
    def _config(thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": str(thread_id)}}

    def _tool_named(self, name: str) -> Any:
        for t in self.tools:
            if getattr(t, "gpt4tools_name", None) == name or getattr(t, "name", None) == name:
                return t
        return None

    # -- uploads ------------------------------------------------------------------------------
    def describe(self, image_path: str) -> str:
        """A caption from the "Get Photo Description" tool, or '' when there is none or it fails."""
        tool = self._tool_named(DESCRIBE_TOOL)
        if tool is None:
            return ""
        try:
            out = tool.invoke(image_path)
        except Exception:
            # A failing captioner must not lose the upload; the model can still use tools on it.
            return ""
        return str(getattr(out, "content", out)).strip()

    def upload(self, image: Any, thread_id: str = "default", caption: str | None = None) -> str:
        """Store an image in the workspace and tell the conversation about it; returns its path.

        ``image``: a file path, bytes or a PIL image. The thread gets the GPT4Tools turn
        "Provide an image named image/....png. Description: ... Understand the image using tools."
        answered by "Received.".
        """
        path = self.workspace.add_image(image)
        if caption is None:
            caption = self.describe(path)
        messages = image_turn_messages(path, caption)
        config = self._config(thread_id)
        if self.graph.checkpointer is None:
            raise ValueError("uploads need a checkpointer: the image turn lives in the thread's memory")
        self.graph.update_state(config, {"messages": messages}, as_node="model")
        return path

    # -- turns --------------------------------------------------------------------------------
    def stream(self, text: str, thread_id: str = "default") -> Iterator[AgentEvent]:
        """Run one turn, yielding its steps; never raises for what the user types or tools do."""
        if not isinstance(text, str) or not text.strip():
            yield AgentEvent("error", text="Please type a message.")
            return
        config = {**self._config(thread_id), "recursion_limit": 4 * (self.max_tool_steps or 10) + 10}
        calls: dict[str, str] = {}
        final_seen = False
        try:
            for update in self.graph.stream({"messages": [HumanMessage(text)]}, config, stream_mode="updates"):
                for node, values in (update or {}).items():
                    for m in (values or {}).get("messages", []) if isinstance(values, dict) else []:
                        for event in self._events(m, calls):
                            final_seen |= event.kind == "final"
                            yield event
        except GraphRecursionError:
            yield self._end_turn(config, "I stopped: the agent took too many steps without a final answer.")
            return
        except Exception as exc:  # a model or graph failure ends this turn, not the session
            yield self._end_turn(config, f"Sorry, something went wrong: {type(exc).__name__}: {exc}")
            return
        if not final_seen:
            yield AgentEvent("error", text="The agent ended the turn without an answer.")

    def _end_turn(self, config: dict, message: str) -> AgentEvent:
        try:
            # Close the turn in memory so the next one starts from a clean human message.
            self.graph.update_state(config, {"messages": [AIMessage(message)]}, as_node="model")
        except Exception:
            pass
        return AgentEvent("error", text=message)

    def _events(self, m: BaseMessage, calls: dict[str, str]) -> Iterator[AgentEvent]:
        if isinstance(m, AIMessage) and m.tool_calls:
            for call in m.tool_calls:
                tool = self._tool_named(call["name"])
                shown = getattr(tool, "gpt4tools_name", None) or call["name"]
                calls[call.get("id") or ""] = shown
                yield AgentEvent(
                    "tool_call",
                    tool=shown,
                    tool_input=call["args"],
                    raw={"react_text": m.response_metadata.get("react_text"), "id": call.get("id")},
                )
        elif isinstance(m, ToolMessage):
            output = _text(m)
            artifact = getattr(m, "artifact", None)
            # A new image is the artifact's "path", or an output that is nothing but a path; a text
            # result that merely names the input image ("No text found in image/x.png") has none.
            made = artifact.get("path") if isinstance(artifact, dict) else None
            if not made and react.extract_image_paths(output) == [output.strip().rstrip(".")]:
                made = output.strip().rstrip(".")
            yield AgentEvent(
                "tool_result",
                tool=calls.get(m.tool_call_id, m.name),
                output=output,
                image=self._image_in(made) if isinstance(made, str) else None,
                raw={"status": getattr(m, "status", None), "artifact": artifact},
            )
        elif isinstance(m, AIMessage):
            text = _text(m)
            yield AgentEvent(
                "final",
                text=text,
                image=self._image_in(text),
                raw={"react_text": m.response_metadata.get("react_text")},
            )

    def _image_in(self, text: str) -> str | None:
        """The last workspace image a text names, if it exists."""
        for path in reversed(react.extract_image_paths(text or "")):
            try:
                self.workspace.resolve(path)
            except Exception:
                continue
            return path
        return None

    def invoke(self, text: str, thread_id: str = "default") -> str:
        """Run one turn and return the final answer (or the message that ended the turn)."""
        answer = ""
        for event in self.stream(text, thread_id):
            if event.kind in ("final", "error") and event.text:
                answer = event.text
        return answer

    def history(self, thread_id: str = "default") -> list[BaseMessage]:
        """Every message of the thread, tool steps included (the model sees a trimmed window)."""
        if self.graph.checkpointer is None:
            return []
        state = self.graph.get_state(self._config(thread_id))
        return list(state.values.get("messages", [])) if state and state.values else []
