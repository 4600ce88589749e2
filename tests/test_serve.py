"""``efe serve``: the OpenAI-compatible server, driven by the real ``openai`` client, ``ChatOpenAI``
with ``create_agent``, and ``efe eval``, all over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from conftest import build_tiny_lm

MODEL = "efe-tiny"


def _yes_biased(model, tokenizer, bonus: float = 40.0):
    """Make the random model prefer " Yes" at the ReAct decision, so a tool call is certain."""
    import torch

    ids = tokenizer(" Yes", add_special_tokens=False)["input_ids"]
    bias = torch.zeros(model.config.vocab_size)
    bias[ids[0]] = bonus
    model.lm_head.register_forward_hook(lambda _m, _i, out: out + bias.to(out.dtype))
    return model


class _Server:
    """uvicorn in a thread on a socket bound to a free port; stops within seconds."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def llm(smollm2_tokenizer):
    from efe_langchain.llm import LocalLLM

    model = _yes_biased(build_tiny_lm(smollm2_tokenizer, seed=3), smollm2_tokenizer)
    return LocalLLM.from_model(model, smollm2_tokenizer, max_new_tokens=12, model_name="tiny random llama")


@pytest.fixture(scope="module")
def server(llm):
    from efe_langchain.serve import create_app

    with _Server(create_app(llm, model_name=MODEL)) as s:
        yield s


@pytest.fixture()
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


PROMPT = "Human: Provide an image named image/ab12cd34.png. Describe it.\nAI:"


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_completion_is_the_models_greedy_output(client, llm):
    resp = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    assert resp.choices[0].text == llm.invoke(PROMPT, max_new_tokens=12)
    assert resp.usage.prompt_tokens == len(llm.tokenizer(PROMPT)["input_ids"])
    assert resp.usage.completion_tokens > 0


def test_completion_honours_stop(client):
    full = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text
    assert len(full) > 6
    stop = full[3:6]  # a piece of what the model writes anyway
    cut = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop]).choices[0].text
    assert cut == full[: full.index(stop)]
    assert stop not in cut


def test_completion_streaming_matches_non_streaming(client):
    full = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text
    chunks = list(client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stream=True))
    assert len(chunks) > 2  # token by token, then the finish chunk
    assert "".join(c.choices[0].text for c in chunks) == full
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


TOOLS = [{
    "type": "function",
    "function": {
        "name": "edge_detection",
        "description": "useful when you want to detect the edges of the image. The input to this tool should be a string, representing the image_path",
        "parameters": {"type": "object", "properties": {"image_path": {"type": "string"}}, "required": ["image_path"]},
    },
}]
MESSAGES = [
    {"role": "user", "content": "Provide an image named image/ab12cd34.png. Description: a cat. Understand the image using tools."},
    {"role": "assistant", "content": "Received."},
    {"role": "user", "content": "Find the edges of the picture."},
]


def test_chat_with_tools_returns_tool_calls(client):
    resp = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, temperature=0)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "edge_detection"
    # constrained decoding picks an image the conversation has
    assert json.loads(call.function.arguments) == {"image_path": "image/ab12cd34.png"}
    assert resp.usage.prompt_tokens > 100


def test_chat_streaming_with_tools(client):
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, temperature=0, stream=True)
    name, args, finish = "", "", None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            name += tc.function.name or ""
            args += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "edge_detection"
    assert json.loads(args)["image_path"] == "image/ab12cd34.png"
    assert finish == "tool_calls"


def test_chat_after_tool_result_and_without_tools_answers_in_text(client):
    resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello!"}], max_tokens=8)
    assert resp.choices[0].finish_reason == "stop"
    assert isinstance(resp.choices[0].message.content, str)
    assert not resp.choices[0].message.tool_calls


def test_bad_requests_get_openai_errors(client):
    import openai

    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4", prompt="x")
    with pytest.raises(openai.BadRequestError, match="n=1"):
        client.completions.create(model=MODEL, prompt="x", n=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])


def test_chat_openai_agent_runs_a_tool_through_the_server(server):
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    seen = []

    @tool(return_direct=True)
    def edge_detection(image_path: str) -> str:
        """useful when you want to detect the edges of the image. The input to this tool should be a string, representing the image_path"""
        seen.append(image_path)
        return f"image/edges_of_{image_path.split('/')[-1]}"

    model = ChatOpenAI(model=MODEL, base_url=server.url, api_key="unused", temperature=0, max_retries=0)
    agent = create_agent(model, [edge_detection])
    result = agent.invoke({"messages": MESSAGES})
    calls = [m for m in result["messages"] if isinstance(m, AIMessage) and m.tool_calls]
    assert calls and calls[0].tool_calls[0]["name"] == "edge_detection"
    assert seen == ["image/ab12cd34.png"]
    assert isinstance(result["messages"][-1], ToolMessage)
    assert result["messages"][-1].content == "image/edges_of_ab12cd34.png"


def test_efe_eval_against_the_server(server, tmp_path):
    from efe_langchain.cli import main

    models = [f"openai-completions:{MODEL}", f"openai-chat:{MODEL}", f"openai-tools:{MODEL}"]
    argv = ["eval", "--out", str(tmp_path), "--limit", "2", "--max-new-tokens", "8", "--no-progress",
            "--base-url", server.url, "--concurrency", "2"]
    for m in models:
        argv += ["--model", m]
    assert main(argv) == 0
    for m in models:
        folder = tmp_path / m.replace(":", "_")
        metrics = json.loads((folder / "metrics.json").read_text())
        preds = json.loads((folder / "predictions.json").read_text())
        assert [p["id"] for p in preds] == [1, 2]
        assert metrics["n_scored"] == 2 and metrics["usage"]["prompt_tokens"] > 0
    tools_preds = json.loads((tmp_path / f"openai-tools_{MODEL}" / "predictions.json").read_text())
    # the Yes-biased model calls a tool on record 1; native tool_calls come back as ReAct text,
    # with the GPT4Tools name, the record's image and the reference observation after it
    first = tools_preds[0]["output"]
    assert first.startswith("Thought: Do I need to use a tool? Yes\nAction: ")
    assert "Action Input: image/" in first and "\nObservation:\n[output_from_caption_tool]\n" in first
    assert (tmp_path / "report.md").read_text().count(MODEL) >= 3


@pytest.mark.slow
def test_efe_serve_command_with_the_embedded_model(tmp_path):
    """``efe serve`` as users start it, in a subprocess on a free port, with the real SmolLM2."""
    import os
    import subprocess
    import sys
    import urllib.request

    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "efe_langchain.cli", "serve", "--model", "embedded:noadapter", "--port", str(port),
           "--max-new-tokens", "24", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ, TQDM_DISABLE="1"))
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"efe serve did not come up: {proc.stdout.read().decode()[-2000:]}")
                time.sleep(0.5)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=300)
        assert [m.id for m in client.models.list().data] == ["efe-embedded-noadapter"]
        resp = client.chat.completions.create(model="efe-embedded-noadapter", messages=MESSAGES, tools=TOOLS, temperature=0)
        msg = resp.choices[0].message
        if msg.tool_calls:  # constrained decoding: the only tool, the conversation's image
            assert msg.tool_calls[0].function.name == "edge_detection"
            assert json.loads(msg.tool_calls[0].function.arguments) == {"image_path": "image/ab12cd34.png"}
        else:
            assert msg.content.strip()
        text = client.completions.create(model="efe-embedded-noadapter", prompt="The capital of France is", max_tokens=4, temperature=0)
        assert text.choices[0].text.strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
