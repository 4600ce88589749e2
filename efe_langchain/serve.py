"""An OpenAI-compatible HTTP server over the local model, so any OpenAI client can use it.

Endpoints: ``GET /v1/models``, ``POST /v1/completions`` (text in, text out, ``stop`` honoured,
token-by-token streaming) and ``POST /v1/chat/completions`` (messages and ``tools`` through
``ChatEFE``: a tool call comes back as ``tool_calls``; streaming sends the reply as SSE chunks).

Chat replies are ReAct steps, which can only be parsed once complete, so a streamed chat reply
arrives as one content (or tool-call) chunk between the role chunk and the finish chunk.

A chat request without tools whose user message already is a rendered GPT4Tools prompt is completed
as text (ReAct pass-through), so ``efe eval --model openai-chat:...`` scores the same prompt here as
on a hosted chat model instead of nesting one GPT4Tools prompt inside another.

One model serves one request at a time (its KV cache is shared); requests queue on a lock.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

from efe_langchain import react
from efe_langchain.prompts import load_prompt_layout

__all__ = ["create_app", "serve"]


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    prompt: str | list[str]
    max_tokens: int | None = None
    temperature: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = 1


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = 1


class _APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type_, param


def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _now() -> int:
    return int(time.time())


def create_app(llm: Any, *, model_name: str = "efe", chat_model: Any = None, default_max_tokens: int | None = None):
    """The FastAPI app serving ``llm`` (a ``LocalLLM``) under the model id ``model_name``.

    ``chat_model`` defaults to ``ChatEFE(llm=llm)``.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse

    from efe_langchain.chat_model import ChatEFE

    chat = chat_model if chat_model is not None else ChatEFE(llm=llm, model=model_name)
    lock = threading.Lock()
    max_default = default_max_tokens or int(getattr(llm, "max_new_tokens", 128) or 128)
    created = _now()
    prefix = load_prompt_layout()["prefix"][:80]

    app = FastAPI(title="EFE OpenAI-compatible server", version="1")
    app.state.llm = llm
    app.state.model_name = model_name

    @app.exception_handler(_APIError)
    async def _api_error(_: Request, exc: _APIError):
        return JSONResponse(status_code=exc.status, content={"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": None}})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(status_code=400, content={"error": {"message": f"{where}: {first.get('msg', 'invalid request')}", "type": "invalid_request_error", "param": where or None, "code": None}})

    def check_model(name: str) -> None:
        if name not in (model_name, "default"):
            raise _APIError(404, f"The model '{name}' does not exist; this server serves '{model_name}'", "not_found_error", "model")

    def count(text: str) -> int:
        tok = getattr(llm, "tokenizer", None)
        if tok is None:
            return len(text.split())
        return len(tok(text)["input_ids"]) if text else 0

    def generate(prompt: str, stop: list[str], max_tokens: int, temperature: float | None) -> Iterator[str]:
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens}
        if temperature is not None:
            kwargs["temperature"] = temperature
        with lock:
            yield from llm.stream(prompt, stop=stop or None, **kwargs)

    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "efe"}]}

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model_name}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        check_model(req.model)
        if req.n != 1:
            raise _APIError(400, "only n=1 is supported", param="n")
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts:
            raise _APIError(400, "prompt is empty", param="prompt")
        stop = _stops(req.stop)
        max_tokens = req.max_tokens or max_default
        cid = f"cmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            def events() -> Iterator[str]:
                for i, p in enumerate(prompts):
                    n = 0
                    for piece in generate(p, stop, max_tokens, req.temperature):
                        n += 1
                        yield _sse({"id": cid, "object": "text_completion", "created": _now(), "model": model_name,
                                    "choices": [{"text": piece, "index": i, "logprobs": None, "finish_reason": None}]})
                    yield _sse({"id": cid, "object": "text_completion", "created": _now(), "model": model_name,
                                "choices": [{"text": "", "index": i, "logprobs": None, "finish_reason": "length" if n >= max_tokens else "stop"}]})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        choices, p_tok, c_tok = [], 0, 0
        for i, p in enumerate(prompts):
            text = "".join(generate(p, stop, max_tokens, req.temperature))
            n_out = count(text)
            p_tok += count(p)
            c_tok += n_out
            choices.append({"text": text, "index": i, "logprobs": None, "finish_reason": "length" if n_out >= max_tokens else "stop"})
        return {"id": cid, "object": "text_completion", "created": _now(), "model": model_name, "choices": choices,
                "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}}

    def respond(req: ChatRequest) -> tuple[dict[str, Any], str, dict[str, int]]:
        """(assistant message, finish reason, usage) for a chat request."""
        from langchain_core.messages import convert_to_messages

        max_tokens = req.max_completion_tokens or req.max_tokens or max_default
        last = req.messages[-1]
        content = last.get("content")
        if not req.tools and last.get("role") == "user" and isinstance(content, str) and content.startswith(prefix):
            text = "".join(generate(content, list(react.STOP_SEQUENCES) + _stops(req.stop), max_tokens, req.temperature))
            usage = {"prompt_tokens": count(content), "completion_tokens": count(text)}
            return {"role": "assistant", "content": text}, "stop", usage
        try:
            messages = convert_to_messages(req.messages)
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise _APIError(400, f"messages: {exc}", param="messages") from None
        model = chat.bind_tools(req.tools, tool_choice=req.tool_choice) if req.tools else chat
        with lock:
            try:
                ai = model.invoke(messages, stop=_stops(req.stop) or None)
            except ValueError as exc:
                raise _APIError(400, str(exc)) from None
        meta = ai.response_metadata or {}
        prompt_text, react_text = meta.get("prompt", ""), meta.get("react_text", "")
        usage = {"prompt_tokens": count(prompt_text), "completion_tokens": count(react_text)}
        if ai.tool_calls:
            calls = [{"id": c.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": c["name"], "arguments": json.dumps(c["args"])}} for c in ai.tool_calls]
            return {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls", usage
        return {"role": "assistant", "content": ai.content if isinstance(ai.content, str) else ai.text}, "stop", usage

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest):
        check_model(req.model)
        if req.n != 1:
            raise _APIError(400, "only n=1 is supported", param="n")
        message, finish, usage = respond(req)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            def events() -> Iterator[str]:
                base = {"id": cid, "object": "chat.completion.chunk", "created": _now(), "model": model_name}
                yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
                if message.get("tool_calls"):
                    delta = {"tool_calls": [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]}
                else:
                    delta = {"content": message["content"]}
                yield _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                if (req.model_extra or {}).get("stream_options", {}).get("include_usage"):
                    yield _sse({**base, "choices": [], "usage": usage})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {"id": cid, "object": "chat.completion", "created": _now(), "model": model_name,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage}

    return app


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def serve(llm: Any, *, host: str = "127.0.0.1", port: int = 8000, model_name: str = "efe", log_level: str = "info") -> None:
    """Run the server in the foreground (Ctrl-C stops it)."""
    import uvicorn

    uvicorn.run(create_app(llm, model_name=model_name), host=host, port=port, log_level=log_level)
