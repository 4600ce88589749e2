"""Our tools in a plain ``langchain.agents.create_agent`` with ``ChatOpenAI``.

The remote model is the one unreachable thing here, so a small local HTTP server speaks the
OpenAI chat-completions protocol in its place: it asks for the tool named in the script and then
answers with what the tool returned. Everything else (ChatOpenAI, the agent graph, the tool
node, our tools, the workspace) is the real code.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image, ImageDraw

from efe_langchain.tools.registry import load_tools
from efe_langchain.workspace import Workspace

pytest.importorskip("langchain_openai")


class ScriptedOpenAI:
    """A local chat-completions server: call ``tool`` with ``args`` (``{image}`` filled from the
    user's message), then answer with the tool's observation."""

    def __init__(self, tool: str, args: dict) -> None:
        self.tool, self.args, self.requests = tool, args, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                reply = json.dumps(outer.reply(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply(self, body: dict) -> dict:
        last = body["messages"][-1]
        if last["role"] == "tool":
            message = {"role": "assistant", "content": f"Done: {last['content']}"}
            finish = "stop"
        else:
            image = re.search(r"image/\S+?\.png", last["content"]).group(0)
            args = {k: v.replace("{image}", image) if isinstance(v, str) else v for k, v in self.args.items()}
            call = {"id": "call_1", "type": "function", "function": {"name": self.tool, "arguments": json.dumps(args)}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        return {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def _image(ws) -> str:
    img = Image.new("RGB", (256, 256), "black")
    ImageDraw.Draw(img).ellipse((60, 60, 200, 200), fill="white")
    return ws.add_image(img)


def _run_agent(server: ScriptedOpenAI, tools, text: str):
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="scripted", base_url=server.base_url, api_key="not-needed", max_retries=0)
    agent = create_agent(model, tools=tools)
    return agent.invoke({"messages": [{"role": "user", "content": text}]})


def test_create_agent_runs_our_tool_and_reads_its_output(ws):
    tools = load_tools(["Image2Canny", "QualityRating"], workspace=ws)
    rel = _image(ws)
    with ScriptedOpenAI("edge_detection_on_image", {"image_path": "{image}"}) as server:
        result = _run_agent(server, tools, f"Detect the edges of {rel}")

    # The model was offered our tools with OpenAI-valid names and explicit JSON schemas.
    offered = {t["function"]["name"]: t["function"] for t in server.requests[0]["tools"]}
    assert set(offered) == {"edge_detection_on_image", "rate_the_quality_of_image"}
    assert offered["edge_detection_on_image"]["parameters"]["required"] == ["image_path"]
    assert offered["edge_detection_on_image"]["description"].startswith("useful when you want to detect the edge")

    tool_msg = next(m for m in result["messages"] if m.type == "tool")
    assert tool_msg.status == "success"
    assert re.fullmatch(r"image/[0-9a-f]{4}_edge_[0-9a-f]{8}_[0-9a-f]{8}\.png", tool_msg.content)
    assert tool_msg.artifact["path"] == tool_msg.content
    assert (ws.root / tool_msg.content).is_file()
    # The observation went back to the model, which answered with it.
    assert server.requests[1]["messages"][-1] == {
        "role": "tool", "content": tool_msg.content, "tool_call_id": "call_1"
    }  # fmt: skip
    assert result["messages"][-1].content == f"Done: {tool_msg.content}"


def test_create_agent_gets_tool_errors_as_observations(ws):
    tools = load_tools(["Image2Canny"], workspace=ws)
    rel = _image(ws)
    with ScriptedOpenAI("edge_detection_on_image", {"image_path": "../../etc/passwd"}) as server:
        result = _run_agent(server, tools, f"Detect the edges of {rel}")
    tool_msg = next(m for m in result["messages"] if m.type == "tool")
    assert tool_msg.status == "error" and "inside the workspace" in tool_msg.content
    assert result["messages"][-1].content.startswith("Done: Error:")
