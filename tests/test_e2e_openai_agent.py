"""End to end, as a LangChain developer would run it: ``ChatOpenAI`` in ``create_agent`` with EFE's
image tools, the model being the embedded SmolLM2 + EFE LoRA behind ``efe serve``'s
OpenAI-compatible API on 127.0.0.1. Nothing is faked: real HTTP, real model, real tools, real files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from test_serve import _Server

MODEL = "efe-embedded"


@pytest.fixture(scope="module")
def served():
    from efe_langchain.llm import load_embedded_llm
    from efe_langchain.serve import create_app

    with _Server(create_app(load_embedded_llm(), model_name=MODEL)) as server:
        yield server


def test_chat_openai_agent_uses_efe_tools_through_efe_serve(served, tmp_path):
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_openai import ChatOpenAI
    from skimage import data

    from efe_langchain import Workspace, load_tools

    ws = Workspace(tmp_path / "ws")
    rel = ws.add_image(Image.fromarray(data.astronaut()))
    # Two neighbouring tools, so the model has to choose by the request.
    tools = load_tools(["Image2Canny_cpu", "Image2Pose_cpu"], workspace=ws)
    model = ChatOpenAI(model=MODEL, base_url=served.url, api_key="unused", temperature=0, max_retries=0, timeout=300)
    agent = create_agent(model, tools)
    result = agent.invoke(
        {
            "messages": [
                ("user", f"Provide an image named {rel}. Description: an astronaut in an orange suit. Understand the image using tools."),
                ("assistant", "Received."),
                ("user", "Detect the edges of this image"),
            ]
        },
        {"recursion_limit": 8},
    )
    messages = result["messages"]
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls, [m.content for m in messages]
    assert calls[0]["name"] == "edge_detection_on_image"
    assert calls[0]["args"] == {"image_path": rel}

    observation = next(m for m in messages if isinstance(m, ToolMessage))
    assert observation.status != "error", observation.content
    out = ws.resolve(observation.artifact["path"])
    edges = np.asarray(Image.open(out).convert("L"))
    # Canny output: a black map with thin white edges, where the photo has them.
    assert set(np.unique(edges)) <= {0, 255}
    assert 0.01 < (edges > 0).mean() < 0.4

    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and final.content.strip()
