"""A LangChain chat model that does tool calling through the GPT4Tools ReAct prompt.

``ChatEFE`` wraps a text-completion LLM (our ``LocalLLM`` or any LangChain ``BaseLLM``) and makes
it behave like a tool-calling chat model, so ``langchain.agents.create_agent`` drives it exactly
as it drives ``ChatOpenAI``:

* ``bind_tools`` renders each bound tool as ``> {GPT4Tools name}: {description}``;
* ``_generate`` renders the messages into the GPT4Tools prompt (earlier turns become
  ``Previous conversation``, the last human message ``New input``, the tool calls and tool results
  after it the scratchpad), asks the LLM for one ReAct step and turns it into
  ``AIMessage.tool_calls`` or a final ``AIMessage``;
* the raw ReAct text and the rendered prompt are kept in ``response_metadata`` for evaluation.

System messages are ignored on purpose: the GPT4Tools prefix is fixed because that is the text the
published LoRA weights and ours were trained on; another system prompt would only make the local
model worse. Use ``include_system_messages=True`` to prepend them to the ``New input`` anyway.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, BaseLLM, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from efe_langchain import react

__all__ = ["ChatEFE", "ReactTool", "to_react_tool", "messages_to_prompt"]

# Key under which bind_tools stores the GPT4Tools view of a tool inside its OpenAI-format dict.
_META_KEY = "x-gpt4tools"


@dataclass(frozen=True)
class ReactTool:
    """A bound tool as the ReAct prompt sees it, plus how to map its input back to arguments."""

    name: str  # the LangChain name, what AIMessage.tool_calls carry
    react_name: str  # the name written in the prompt (the GPT4Tools name for our tools)
    description: str
    fields: tuple[str, ...]  # args_schema fields, in order
    field_types: tuple[str, ...]  # JSON-schema type of each field ("string", "integer", ...)
    n_args: int
    takes_image: bool
    # Fields the schema requires (None: all of them); optional ones such as a seed are not.
    required: tuple[str, ...] | None = None

    @property
    def gpt4tools_name(self) -> str:  # lets react.render_prompt read a ReactTool like our tools
        return self.react_name

    def args_from_input(self, tool_input: str) -> dict[str, Any]:
        """GPT4Tools' comma-separated input as keyword arguments, in the schema's field order."""
        if not self.fields:
            # A tool without arguments: whatever the model wrote as input has nowhere to go.
            return {}
        parts = react.split_args(tool_input, max(self.n_args, 1))
        if len(parts) > len(self.fields):
            # More parts than fields: the last field takes the rest, commas and all.
            head = len(self.fields) - 1
            parts = parts[:head] + [", ".join(parts[head:])]
        return {f: _coerce(v, t) for f, v, t in zip(self.fields, parts, self.field_types)}

    def input_from_args(self, args: dict[str, Any]) -> str:
        """The inverse, for rendering a tool call that did not come from our own ReAct text."""
        if not self.fields:
            return ""
        required = self.required_fields
        return ", ".join(_as_text(args[f]) for f in self.fields if f in args and (f in required or args[f] is not None))

    @property
    def required_fields(self) -> tuple[str, ...]:
        return self.fields if self.required is None else self.required


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _coerce(value: str, json_type: str) -> Any:
    """Turn a text argument into the type the schema asks for, leaving it as text when unsure."""
    value = value.strip()
    if json_type in ("integer", "number", "boolean", "array", "object"):
        try:
            parsed = json.loads(value.lower() if json_type == "boolean" else value)
        except ValueError:
            return value
        return parsed
    return value


def _one_line(text: str) -> str:
    # A tool line is one line of the prompt; docstrings carry newlines and indentation.
    return re.sub(r"\s+", " ", text or "").strip()


def _describe(description: str, fields: Sequence[str]) -> str:
    """A description that tells the model its input format, in GPT4Tools' own words."""
    description = _one_line(description)
    if "input to this tool" in description.lower() or not fields:
        return description
    if len(fields) == 1:
        tail = f"The input to this tool should be a string, representing the {fields[0]}."
    else:
        words = {2: "two", 3: "three", 4: "four", 5: "five"}.get(len(fields), str(len(fields)))
        names = ", ".join(fields[:-1]) + f" and the {fields[-1]}"
        tail = f"The input to this tool should be a comma separated string of {words}, representing the {names}."
    sep = " " if description.endswith((".", "!", "?")) or not description else ". "
    return f"{description}{sep}{tail}".strip()


def to_react_tool(tool: Any) -> ReactTool:
    """Our tools (``gpt4tools_name``, ``n_args``), any LangChain tool, a dict or a pydantic schema."""
    if isinstance(tool, ReactTool):
        return tool
    if isinstance(tool, dict) and _META_KEY in tool:
        meta = tool[_META_KEY]
        return ReactTool(
            name=meta["name"],
            react_name=meta["react_name"],
            description=meta["description"],
            fields=tuple(meta["fields"]),
            field_types=tuple(meta["field_types"]),
            n_args=int(meta["n_args"]),
            takes_image=bool(meta["takes_image"]),
            required=tuple(meta["required"]) if meta.get("required") is not None else None,
        )
    spec = convert_to_openai_tool(tool)["function"]
    parameters = spec.get("parameters") or {}
    props = parameters.get("properties") or {}
    fields = tuple(props)
    field_types = tuple(_json_type(p) for p in props.values())
    # A schema that lists no "required" keeps every field required (as before); one that does
    # (pydantic always does) leaves optional fields such as a seed out of the ReAct input.
    listed = parameters.get("required")
    required = tuple(f for f in fields if f in listed) if listed is not None else None
    react_name = getattr(tool, "gpt4tools_name", None)
    known = None if react_name else _gpt4tools_spec_for(spec["name"])
    if known is not None:
        # A GPT4Tools tool by its snake_case name (e.g. over the OpenAI-compatible server): the
        # prompt shows the name and words the model was trained on.
        react_name, description, n_args = known.name, known.description, known.n_args
    elif react_name:
        # One of ours: the description is GPT4Tools' verbatim text, the arg count is declared.
        description = _one_line(getattr(tool, "gpt4tools_description", None) or spec.get("description", ""))
        n_args = int(getattr(tool, "n_args", None) or max(len(fields), 1))
    else:
        react_name = spec["name"]
        needed = fields if required is None else required
        description = _describe(spec.get("description", ""), needed)
        n_args = max(len(needed), 1)
    takes_image = getattr(tool, "takes_image", None)
    if takes_image is None:
        takes_image = "image_path" in description or (bool(fields) and fields[0] in ("image_path", "image"))
    return ReactTool(
        name=spec["name"],
        react_name=react_name,
        description=description,
        fields=fields,
        field_types=field_types,
        n_args=n_args,
        takes_image=bool(takes_image),
        required=required,
    )


def _json_type(prop: dict) -> str:
    """A property's JSON type; ``Optional[int]`` comes as ``anyOf: [integer, null]``."""
    if "type" in prop:
        return str(prop["type"])
    types = [str(p.get("type")) for p in prop.get("anyOf") or () if p.get("type") not in (None, "null")]
    return types[0] if len(types) == 1 else "string"


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _gpt4tools_spec_for(name: str):
    """The GPT4Tools spec whose snake_case name is ``name`` (``edge_detection_on_image``), if any."""
    from efe_langchain.prompts import load_tool_specs

    return next((s for s in load_tool_specs() if _snake(s.name) == name), None)


def _tool_dict(tool: ReactTool) -> dict[str, Any]:
    """An OpenAI-format tool dict that also carries the GPT4Tools view (JSON-able, so traceable)."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": {
                "type": "object",
                "properties": {f: {"type": t} for f, t in zip(tool.fields, tool.field_types)},
                "required": list(tool.required_fields),
            },
        },
        _META_KEY: {
            "name": tool.name,
            "react_name": tool.react_name,
            "description": tool.description,
            "fields": list(tool.fields),
            "field_types": list(tool.field_types),
            "n_args": tool.n_args,
            "takes_image": tool.takes_image,
            "required": None if tool.required is None else list(tool.required),
        },
    }


def _text(message: BaseMessage) -> str:
    return message.text if isinstance(message.text, str) else str(message.text())


@dataclass
class RenderedMessages:
    """What one model call sees, split the way the GPT4Tools prompt needs it."""

    history: list[tuple[str, str]]
    input: str
    steps: list[react.Step]
    # every text of the conversation, tool outputs of earlier turns included: image candidates
    all_text: str


def split_messages(
    messages: Sequence[BaseMessage],
    tools: Sequence[ReactTool],
    include_system_messages: bool = False,
) -> RenderedMessages:
    """Earlier turns -> history, the last human message -> input, what follows it -> scratchpad."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    by_name = {t.name: t for t in tools}
    history: list[tuple[str, str]] = []
    system: list[str] = []
    texts: list[str] = []
    for m in messages[: max(last_human, 0)] if last_human >= 0 else messages:
        text = _text(m)
        texts.append(text)
        if isinstance(m, SystemMessage):
            system.append(text)
        elif isinstance(m, HumanMessage):
            history.append(("Human", text))
        elif isinstance(m, AIMessage) and text.strip():
            # Visual ChatGPT's memory keeps the human inputs and the final answers; tool steps of
            # earlier turns stay out of the prompt (their results live on in the answers).
            history.append(("AI", text.strip()))
    if last_human < 0:
        return RenderedMessages(history, "", [], "\n".join(texts))

    user_input = _text(messages[last_human])
    texts.append(user_input)
    if include_system_messages and system:
        user_input = "\n".join(system + [user_input])

    steps: list[react.Step] = []
    pending: dict[str, tuple[str, str]] = {}
    for m in messages[last_human + 1 :]:
        texts.append(_text(m))
        if isinstance(m, AIMessage) and m.tool_calls:
            raw_inputs = _raw_inputs(m)
            for k, call in enumerate(m.tool_calls):
                bound = by_name.get(call["name"])
                name = bound.react_name if bound else call["name"]
                raw = raw_inputs[k] if k < len(raw_inputs) else None
                if raw is None:
                    raw = bound.input_from_args(call["args"]) if bound else ", ".join(map(_as_text, call["args"].values()))
                pending[call.get("id") or f"_{k}"] = (name, raw)
        elif isinstance(m, ToolMessage):
            name, raw = pending.pop(m.tool_call_id, (m.name or "", ""))
            steps.append(react.Step(name, raw, _text(m).strip()))
    return RenderedMessages(history, user_input, steps, "\n".join(texts))


def _raw_inputs(message: AIMessage) -> list[str]:
    """The exact ``Action Input`` text of a tool call we produced, so re-rendering is byte-exact."""
    raw = message.response_metadata.get("react_text") if message.response_metadata else None
    if not raw:
        return []
    parsed = react.parse(raw)
    return [parsed.tool_input] if isinstance(parsed, react.ToolCall) else []


def messages_to_prompt(
    messages: Sequence[BaseMessage], tools: Sequence[Any] = (), include_system_messages: bool = False
) -> str:
    """The GPT4Tools prompt for a message list (what ``ChatEFE`` sends to its LLM)."""
    react_tools = [to_react_tool(t) for t in tools]
    parts = split_messages(messages, react_tools, include_system_messages)
    return react.render_prompt(
        react_tools, react.render_history(parts.history), parts.input, react.render_scratchpad(parts.steps)
    )


class ChatEFE(BaseChatModel):
    """Tool calling for a local completion model through the GPT4Tools ReAct prompt.

    Example:
        .. code-block:: python

            from langchain.agents import create_agent
            from efe_langchain import ChatEFE, load_embedded_llm

            model = ChatEFE(llm=load_embedded_llm())
            agent = create_agent(model, tools)

    Setup: ``llm`` is our ``LocalLLM`` (one ReAct step per call, with schema-constrained decoding
    of tool names, image paths and argument counts) or any LangChain ``BaseLLM``, which is called
    with the ReAct stop sequences and parsed.

    ``temperature``, ``max_tokens``, ``timeout`` and ``max_retries`` are accepted so that code
    written for hosted chat models runs unchanged; ``max_tokens`` and ``stop`` reach a plain
    ``BaseLLM``; decoding settings of a ``LocalLLM`` are its own.
    """

    llm: Any = Field(description="LocalLLM or any LangChain BaseLLM")
    model_name: str = Field(default="", alias="model")
    constrained: bool | None = None
    max_format_retries: int = 2
    include_system_messages: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    timeout: float | None = None
    max_retries: int | None = None
    streaming: bool = False

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, extra="ignore")

    @property
    def _llm_type(self) -> str:
        return "efe-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self._model_label(), "constrained": self.constrained}

    def _model_label(self) -> str:
        if self.model_name:
            return self.model_name
        for attr in ("model_name", "model_id", "name"):
            value = getattr(self.llm, attr, None)
            if isinstance(value, str) and value:
                return value
        return type(self.llm).__name__

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="efe",
            ls_model_name=kwargs.get("model") if isinstance(kwargs.get("model"), str) else self._model_label(),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = list(stop or self.stop or [])
        return params

    # -- tools --------------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; each is rendered as ``> {name}: {description}`` in the prompt.

        ``tool_choice`` naming one tool lists only that tool; ``"any"``/``"required"``/``True``
        are accepted but not enforced (the prompt format lets the model answer without a tool).
        """
        react_tools = [to_react_tool(t) for t in tools]
        if isinstance(tool_choice, dict):
            tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if isinstance(tool_choice, str) and tool_choice not in ("auto", "any", "required", "none"):
            chosen = [t for t in react_tools if t.name == tool_choice]
            if not chosen:
                raise ValueError(f"tool_choice {tool_choice!r} is not among the bound tools {[t.name for t in react_tools]}")
            react_tools = chosen
        if tool_choice == "none":
            react_tools = []
        kwargs.pop("ls_structured_output_format", None)
        kwargs.pop("strict", None)
        kwargs.pop("parallel_tool_calls", None)
        return super().bind(tools=[_tool_dict(t) for t in react_tools], **kwargs)

    # -- generation ---------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = [to_react_tool(t) for t in kwargs.get("tools") or []]
        message = self._respond(messages, tools, stop, run_manager)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # One ReAct step has to be complete before it can be parsed into a tool call, so the
        # step comes as one chunk.
        message = self._generate(messages, stop, run_manager, **kwargs).generations[0].message
        chunk = AIMessageChunk(
            content=message.content,
            id=message.id,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(message.tool_calls)
            ],
        )
        if run_manager and isinstance(chunk.content, str):
            run_manager.on_llm_new_token(chunk.content, chunk=ChatGenerationChunk(message=chunk))
        yield ChatGenerationChunk(message=chunk)

    def _respond(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[ReactTool],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
    ) -> AIMessage:
        parts = split_messages(messages, tools, self.include_system_messages)
        history = react.render_history(parts.history)
        scratchpad = react.render_scratchpad(parts.steps)
        image_paths = react.extract_image_paths(parts.all_text)
        names = [t.react_name for t in tools]
        attempts: list[str] = []
        prompt = ""
        error = ""
        for _ in range(1 + max(self.max_format_retries, 0)):
            prompt = react.render_prompt(tools, history, parts.input, scratchpad)
            text = self._complete(prompt, tools, image_paths, stop, run_manager)
            attempts.append(text)
            result = react.parse(text, names)
            if isinstance(result, react.ToolCall):
                tool = next(t for t in tools if t.react_name == result.tool)
                error = _arg_count_error(tool, result.tool_input)
                if not error:
                    return self._tool_call_message(tool, result, prompt, attempts)
            elif isinstance(result, react.FinalAnswer):
                return self._final_message(result.text, prompt, attempts)
            else:
                error = result.error
            # Tell the model what went wrong the way an observation would, and let it try again.
            reminder = react.FORMAT_REMINDER.format(error=error, tool_names=", ".join(names))
            failed = react.cut_hallucinated_observation(text).rstrip()
            scratchpad += (failed + "\n" if failed else "") + react.OBSERVATION_PREFIX + " " + reminder + "\n"
        answer = (
            f"Sorry, I could not turn that into a valid tool call or answer after {len(attempts)} "
            f"tries (last problem: {error}). Please rephrase your request."
        )
        return self._final_message(answer, prompt, attempts, parse_error=error)

    def _complete(
        self,
        prompt: str,
        tools: Sequence[ReactTool],
        image_paths: list[str],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
    ) -> str:
        react_step = getattr(self.llm, "react_step", None)
        if callable(react_step):
            from efe_langchain.decoding import ToolChoice

            choices = [ToolChoice(t.react_name, t.n_args, t.takes_image) for t in tools]
            constrained = self.constrained if self.constrained is not None else getattr(self.llm, "constrained", True)
            if constrained and not image_paths:
                # An image tool needs an image of the conversation; with none, it cannot be called.
                choices = [c for c in choices if not c.takes_image]
            return react_step(prompt, choices, image_paths, constrained=self.constrained)
        stops = list(dict.fromkeys([*react.STOP_SEQUENCES, *(stop or []), *(self.stop or [])]))
        kwargs = {"max_tokens": self.max_tokens} if self.max_tokens is not None else {}
        if isinstance(self.llm, BaseLLM):
            return self.llm.invoke(prompt, stop=stops, **kwargs)
        out = self.llm.invoke(prompt, stop=stops)
        return out if isinstance(out, str) else _text(out)

    def _metadata(self, prompt: str, attempts: list[str], **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "react_text": attempts[-1],
            "prompt": prompt,
            "model_name": self._model_label(),
            "constrained": self.constrained,
            "model_provider": "efe",
        }
        if len(attempts) > 1:
            meta["react_attempts"] = list(attempts)
        meta.update(extra)
        return meta

    def _usage(self, prompt: str, output: str) -> dict[str, int] | None:
        tokenizer = getattr(self.llm, "tokenizer", None)
        if tokenizer is None:
            return None
        try:
            n_in = len(tokenizer(prompt)["input_ids"])
            n_out = len(tokenizer(output)["input_ids"])
        except Exception:
            return None
        return {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}

    def _tool_call_message(
        self, tool: ReactTool, call: react.ToolCall, prompt: str, attempts: list[str]
    ) -> AIMessage:
        tool_call = {
            "name": tool.name,
            "args": tool.args_from_input(call.tool_input),
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "tool_call",
        }
        return AIMessage(
            content="",
            tool_calls=[tool_call],
            response_metadata=self._metadata(prompt, attempts, finish_reason="tool_calls"),
            usage_metadata=self._usage(prompt, attempts[-1]),
        )

    def _final_message(self, text: str, prompt: str, attempts: list[str], **extra: Any) -> AIMessage:
        return AIMessage(
            content=text,
            response_metadata=self._metadata(prompt, attempts, finish_reason="stop", **extra),
            usage_metadata=self._usage(prompt, attempts[-1]),
        )


def _arg_count_error(tool: ReactTool, tool_input: str) -> str:
    """Why the input does not fit the tool (too few comma-separated parts), or ''."""
    if tool.n_args <= 1:
        return "" if tool_input.strip() or not tool.fields else f"{tool.react_name!r} needs an input"
    parts = [p for p in react.split_args(tool_input, tool.n_args) if p]
    if len(parts) < tool.n_args:
        what = ", ".join(tool.fields) if tool.fields else f"{tool.n_args} values"
        return f"{tool.react_name!r} takes {tool.n_args} comma-separated inputs ({what}), got {len(parts)}"
    return ""
