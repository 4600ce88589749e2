"""Runners: produce one ReAct step per rollout state, from a local model or an OpenAI-compatible API.

Every runner implements ``step(states) -> list[str]``: the next step of each state's continuation
(``Thought: ...`` up to, not including, ``Observation:``). ``run.rollout`` feeds the reference's
observations back between steps, so local models, completion models, chat models and native tool
calling are all scored on the same text.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from efe_langchain import react
from efe_langchain.evaluation.records import (
    EvalRecord,
    PromptTool,
    prompt_images,
    prompt_tools,
    split_instruction,
)
from efe_langchain.prompts import load_prompt_layout

__all__ = [
    "RunnerError",
    "RolloutState",
    "Usage",
    "PRICES",
    "LocalRunner",
    "ReferenceRunner",
    "OpenAICompletionsRunner",
    "OpenAIChatRunner",
    "OpenAIToolsRunner",
    "openai_tool_schema",
    "tool_call_to_react",
]


class RunnerError(RuntimeError):
    """A model or server failed for good (after retries); finished predictions are already stored."""


@dataclass
class RolloutState:
    """One record being evaluated: its prompt so far and the steps the model took."""

    record: EvalRecord
    output: str = ""  # the continuation so far, in the reference's format
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (tool, input, observation)
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0})
    done: bool = False
    _tools: list[PromptTool] | None = None

    @property
    def prompt(self) -> str:
        return self.record.instruction + self.output

    @property
    def tools(self) -> list[PromptTool]:
        if self._tools is None:
            self._tools = prompt_tools(self.record.instruction)
        return self._tools

    @property
    def images(self) -> list[str]:
        return prompt_images(self.prompt)


def _clean_step(text: str) -> str:
    """A step as the scorer should see it: nothing after the stop point, no trailing blanks."""
    return react.cut_hallucinated_observation(text or "").rstrip()


# ---- local models -------------------------------------------------------------------------------
class LocalRunner:
    """Greedy steps from a ``LocalLLM``: batched free decoding, or constrained ReAct decoding."""

    def __init__(self, llm: Any, *, decoding: str = "free", batch_size: int = 8, max_new_tokens: int = 128):
        if decoding not in ("free", "constrained"):
            raise ValueError(f"decoding must be 'free' or 'constrained', not {decoding!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.llm = llm
        self.decoding = decoding
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.chunk_size = batch_size

    def step(self, states: Sequence[RolloutState]) -> list[str]:
        prompts = [s.prompt for s in states]
        if self.decoding == "free":
            outs = self.llm.generate_batch(
                prompts, max_new_tokens=self.max_new_tokens, stop=react.STOP_SEQUENCES, batch_size=self.batch_size,
                progress=False,
            )
        else:
            from efe_langchain.decoding import ToolChoice

            tools = [[ToolChoice(t.name, t.n_args, t.takes_image) for t in s.tools] for s in states]
            images = [s.images for s in states]
            if hasattr(self.llm, "react_batch"):
                outs = self.llm.react_batch(
                    prompts, tools, images, constrained=True, batch_size=self.batch_size, progress=False
                )
            else:
                outs = [self.llm.react_step(p, t, i, constrained=True) for p, t, i in zip(prompts, tools, images)]
        outs = [_clean_step(o) for o in outs]
        tok = getattr(self.llm, "tokenizer", None)
        for s, prompt, out in zip(states, prompts, outs):
            s.usage["calls"] += 1
            if tok is not None:  # tokens processed, for throughput comparisons with API runs
                s.usage["prompt_tokens"] += len(tok(prompt)["input_ids"])
                s.usage["completion_tokens"] += len(tok(out)["input_ids"]) if out else 0
        return outs


class ReferenceRunner:
    """The oracle: replays each record's reference steps. It must score 100 on every metric, which
    checks that an annotation file, the rollout and the scorer agree before models are compared."""

    chunk_size = 64

    def step(self, states: Sequence[RolloutState]) -> list[str]:
        outs = []
        for s in states:
            steps = re.split(r"\nObservation:.*?(?=Thought:|\Z)", s.record.output, flags=re.S)
            i = len(s.steps)
            outs.append(steps[i].strip() if i < len(steps) else "")
            s.usage["calls"] += 1
        return outs


# ---- OpenAI-compatible endpoints ------------------------------------------------------------------
# USD per million tokens (input, output): OpenAI list prices; override with --price MODEL=IN,OUT.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "davinci-002": (2.00, 2.00),
    "babbage-002": (0.40, 0.40),
}


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def cost(self, model: str, prices: dict[str, tuple[float, float]] | None = None) -> float | None:
        table = prices if prices is not None else PRICES
        price = table.get(model)
        if price is None:
            return None
        return (self.prompt_tokens * price[0] + self.completion_tokens * price[1]) / 1e6


def _make_client(base_url: str | None, api_key: str | None, timeout: float):
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - openai is a dependency of the eval extra
        raise RunnerError("the 'openai' package is needed for openai: models: pip install 'efe-langchain[eval]'") from exc
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if base_url:
            api_key = "EMPTY"  # local servers (ours, vLLM) accept any key
        else:
            raise RunnerError("no API key: pass --api-key or set OPENAI_API_KEY (or point --base-url at a local server)")
    # Retries are ours (below), so that every failure is counted and reported the same way.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


class _OpenAIRunner:
    """Shared by the three API runners: threads, retries with backoff, token accounting."""

    kind = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: Any = None,
        concurrency: int = 4,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 60.0,
        max_tokens: int = 256,
        send_stop: bool = True,
    ):
        self.model = model
        self.client = client or _make_client(base_url, api_key, timeout)
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.send_stop = send_stop
        self.chunk_size = self.concurrency * 2
        self._lock = threading.Lock()
        self._dropped: set[str] = set()

    # -- retries ----------------------------------------------------------------------------------
    def _retryable(self, exc: Exception) -> bool:
        import openai

        if isinstance(exc, (openai.RateLimitError, openai.APIConnectionError, openai.APITimeoutError)):
            return True
        return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500

    def _call(self, fn: Callable[[], Any]) -> Any:
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except openai.APIError as exc:
                if not self._retryable(exc) or attempt == self.max_retries:
                    raise RunnerError(f"{self.model} at {self.client.base_url}: {_describe_error(exc)} (after {attempt + 1} attempt(s))") from exc
                # exponential backoff with jitter, so parallel threads do not retry in lockstep
                time.sleep(self.backoff * (2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def _create(self, endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """Call ``endpoint`` with retries; parameters a model refuses are adapted once and remembered.

        Newer OpenAI models refuse ``max_tokens`` (they take ``max_completion_tokens``), ``stop``
        or ``temperature``; the evaluation then runs without them (stops are applied client-side).
        """
        import openai

        while True:
            args = {k: v for k, v in kwargs.items() if v is not None and k not in self._dropped}
            if "max_tokens" in self._dropped and "max_tokens" in kwargs:
                args["max_completion_tokens"] = kwargs["max_tokens"]
            try:
                return self._call(lambda: endpoint(**args))
            except RunnerError as exc:
                cause = exc.__cause__
                refused = getattr(cause, "param", None) if isinstance(cause, openai.BadRequestError) else None
                if refused is None and isinstance(cause, openai.BadRequestError):
                    refused = next((p for p in ("max_tokens", "stop", "temperature") if f"'{p}'" in str(cause)), None)
                if refused in ("max_tokens", "stop", "temperature") and refused not in self._dropped and refused in args:
                    with self._lock:
                        self._dropped.add(refused)
                    continue
                raise

    def step(self, states: Sequence[RolloutState]) -> list[str]:
        if len(states) == 1 or self.concurrency == 1:
            return [self._step_one(s) for s in states]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(states))) as pool:
            return list(pool.map(self._step_one, states))

    def _step_one(self, state: RolloutState) -> str:
        text, usage = self._request(state)
        state.usage["calls"] += 1
        if usage is not None:
            state.usage["prompt_tokens"] += int(getattr(usage, "prompt_tokens", 0) or 0)
            state.usage["completion_tokens"] += int(getattr(usage, "completion_tokens", 0) or 0)
        return _clean_step(text)

    def _request(self, state: RolloutState) -> tuple[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stop(self) -> list[str] | None:
        # The API allows at most four stop strings; ours are exactly four.
        return list(react.STOP_SEQUENCES[:4]) if self.send_stop else None

    def _garbage(self, what: str, response: Any) -> RunnerError:
        shown = repr(response)
        return RunnerError(
            f"{self.model} at {self.client.base_url} answered something that is not {what}: {shown[:200]}"
        )


def _describe_error(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name}{f' HTTP {status}' if status else ''}: {msg[:300]}"


class OpenAICompletionsRunner(_OpenAIRunner):
    """The text ReAct prompt on a completions model (how GPT4Tools ran text-davinci-003)."""

    kind = "openai-completions"

    def _request(self, state: RolloutState) -> tuple[str, Any]:
        resp = self._create(
            self.client.completions.create,
            {"model": self.model, "prompt": state.prompt, "max_tokens": self.max_tokens, "temperature": 0, "stop": self._stop()},
        )
        try:
            text = resp.choices[0].text
        except (AttributeError, IndexError, TypeError, KeyError):
            raise self._garbage("an OpenAI completion", resp) from None
        if not isinstance(text, str):
            raise self._garbage("an OpenAI completion", resp)
        return text, getattr(resp, "usage", None)


class OpenAIChatRunner(_OpenAIRunner):
    """The same text prompt as a chat model's user message; its reply is read as ReAct text."""

    kind = "openai-chat"

    def _request(self, state: RolloutState) -> tuple[str, Any]:
        resp = self._create(
            self.client.chat.completions.create,
            {"model": self.model, "messages": [{"role": "user", "content": state.prompt}],
             "max_tokens": self.max_tokens, "temperature": 0, "stop": self._stop()},
        )
        try:
            text = resp.choices[0].message.content
        except (AttributeError, IndexError, TypeError, KeyError):
            raise self._garbage("an OpenAI chat completion", resp) from None
        return text or "", getattr(resp, "usage", None)


# ---- native tool calling --------------------------------------------------------------------------
_ARG_NAMES_RE = re.compile(r"representing the (.*?)\.?\s*$")


def _snake(text: str, limit: int = 64) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", text.strip().lower()).strip("_")[:limit] or "arg"


def _arg_names(tool: PromptTool) -> list[str]:
    """Parameter names from GPT4Tools' 'representing the X and the Y' wording, when it fits."""
    m = _ARG_NAMES_RE.search(tool.description)
    names: list[str] = []
    if m:
        parts = re.split(r",\s*|\s+and\s+", m.group(1))
        names = [_snake(re.sub(r"^the\s+", "", p.strip())) for p in parts if p.strip()]
    if len(names) != tool.n_args or len(set(names)) != len(names):
        names = (["image_path"] if tool.takes_image else []) + [f"text_{i}" for i in range(1, tool.n_args + 1)]
        names = names[: tool.n_args]
    return names


def openai_tool_schema(tool: PromptTool) -> dict[str, Any]:
    """A GPT4Tools tool as an OpenAI function tool (snake_case name, one string per argument)."""
    names = _arg_names(tool)
    return {
        "type": "function",
        "function": {
            "name": _snake(tool.name),
            "description": tool.description,
            "parameters": {
                "type": "object",
                "properties": {n: {"type": "string"} for n in names},
                "required": names,
            },
        },
    }


def tool_call_to_react(tool: PromptTool | None, name: str, arguments: str) -> str:
    """A native tool call as the ReAct step the scorer reads."""
    try:
        args = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        args = None
    if isinstance(args, dict):
        order = _arg_names(tool) if tool else list(args)
        values = [args[k] for k in order if k in args] + [v for k, v in args.items() if k not in order]
        tool_input = ", ".join(v if isinstance(v, str) else json.dumps(v) for v in values)
    else:
        tool_input = arguments or ""  # malformed JSON arguments: scored as the model wrote them
    action = tool.name if tool else name
    return f"{react.THOUGHT_YES}\n{react.ACTION_PREFIX}{action}\n{react.ACTION_INPUT_PREFIX}{tool_input}"


def _system_prompt() -> str:
    layout = load_prompt_layout()
    intro = layout["prefix"].split("\nTOOLS:")[0]
    rules = layout["suffix"].split("\n\nPrevious conversation:")[0]
    tail = layout["suffix"].split("{input}\n", 1)[1].replace("{agent_scratchpad}", "").strip()
    return f"{intro}\n\n{rules}\n\n{tail}"


def _history_messages(history: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for line in history.splitlines():
        role = "user" if line.startswith("Human: ") else "assistant" if line.startswith("AI: ") else None
        if role is not None:
            messages.append({"role": role, "content": line.split(": ", 1)[1]})
        elif messages:
            messages[-1]["content"] += "\n" + line  # a turn that spans lines
    return messages


_SCRATCH_STEP_RE = re.compile(r"Action: (.*)\nAction Input: (.*)\nObservation:[ \n]?(.*?)(?=\nThought:|\Z)", re.S)


class OpenAIToolsRunner(_OpenAIRunner):
    """Native tool calling: the listed tools as ``tools``, the conversation as messages.

    The reply's first ``tool_call`` becomes ``Action`` / ``Action Input`` text (GPT4Tools name,
    arguments joined with ``, `` in the tool's order), a plain reply a ``No`` step, so the scorer
    reads both kinds of model the same way.
    """

    kind = "openai-tools"

    def messages(self, state: RolloutState) -> list[dict[str, Any]]:
        parts = split_instruction(state.record.instruction)
        msgs: list[dict[str, Any]] = [{"role": "system", "content": _system_prompt()}]
        msgs += _history_messages(parts.chat_history)
        msgs.append({"role": "user", "content": parts.input})
        by_name = {t.name: t for t in state.tools}
        earlier = [(a.strip(), i.strip(), o.strip()) for a, i, o in _SCRATCH_STEP_RE.findall(parts.scratchpad)]
        for k, (tool, tool_input, obs) in enumerate(earlier + state.steps):
            spec = by_name.get(tool)
            names = _arg_names(spec) if spec else ["input"]
            values = react.split_args(tool_input, len(names))
            call_id = f"call_{k}"
            msgs.append({
                "role": "assistant",
                "content": None,
                "tool_calls": [{
                    "id": call_id,
                    "type": "function",
                    "function": {"name": _snake(tool), "arguments": json.dumps(dict(zip(names, values)))},
                }],
            })
            msgs.append({"role": "tool", "tool_call_id": call_id, "content": obs})
        return msgs

    def _request(self, state: RolloutState) -> tuple[str, Any]:
        tools = [openai_tool_schema(t) for t in state.tools]
        kwargs: dict[str, Any] = {"model": self.model, "messages": self.messages(state), "max_tokens": self.max_tokens, "temperature": 0}
        if tools:
            kwargs["tools"] = tools
        resp = self._create(self.client.chat.completions.create, kwargs)
        try:
            message = resp.choices[0].message
        except (AttributeError, IndexError, TypeError, KeyError):
            raise self._garbage("an OpenAI chat completion", resp) from None
        calls = getattr(message, "tool_calls", None) or []
        if calls:
            fn = calls[0].function
            by_snake = {_snake(t.name): t for t in state.tools}
            return tool_call_to_react(by_snake.get(fn.name), fn.name, fn.arguments), getattr(resp, "usage", None)
        content = (getattr(message, "content", None) or "").strip()
        return f"{react.THOUGHT_NO}\n{react.FINAL_PREFIX}{content}", getattr(resp, "usage", None)
