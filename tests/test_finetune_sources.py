"""Data sources besides the offline generator: the official gpt4tools_71k.json format, self-instruct
through a real local OpenAI-protocol server, and the `efe finetune` command."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from efe_langchain import react
from efe_langchain.cli import main as efe_main
from efe_langchain.finetune.gpt4tools_data import convert_gpt4tools, split_steps
from efe_langchain.finetune.offline_data import TOOL_TARGET_SUFFIX
from efe_langchain.finetune.self_instruct import generate_self_instruct

EDGE = ("Edge Detection On Image", "useful when you want to detect the edge of the image. The input to this tool should be a string, representing the image_path")
CANNY = ("Generate Image Condition On Canny Image", "useful when you want to generate a new real image from both the user description and a canny image. The input to this tool should be a comma separated string of two, representing the image_path and the user description.")


def _v1_record(tools, output):
    instr = react.render_prompt(tools, react.render_image_turn("image/abcd1234.png", "a cat on a sofa"), "make a dog from the edges")
    return {"instruction": instr, "input": "", "output": output}


def test_gpt4tools_records_become_one_step_samples(tmp_path):
    chain = ("Thought: Do I need to use a tool? Yes\nAction: Edge Detection On Image\nAction Input: image/abcd1234.png\n"
             "Observation: image/11aa_edge_abcd1234_abcd1234.png\nThought: Do I need to use a tool? Yes\n"
             "Action: Generate Image Condition On Canny Image\nAction Input: image/11aa_edge_abcd1234_abcd1234.png, a dog\n"
             "Observation: image/22bb_canny2image_11aa_abcd1234.png\nThought: Do I need to use a tool? No\n"
             "AI: Here is the dog: image/22bb_canny2image_11aa_abcd1234.png\n")
    steps, answer = split_steps(chain)
    assert [s[0] for s in steps] == [EDGE[0], CANNY[0]] and answer.startswith("Here is the dog")
    held = _v1_record([EDGE, ("Detect Face", "useful when you want to detect faces")], chain)
    path = tmp_path / "gpt4tools_71k.json"
    path.write_text(json.dumps([_v1_record([EDGE, CANNY], chain), held,
                                _v1_record([EDGE, CANNY], "Thought: Do I need to use a tool? No\nAI: Hello!")]))
    samples, stats = convert_gpt4tools(path)
    assert stats == {"records": 3, "samples": 4, "dropped_heldout": 1, "dropped_unparsable": 0}
    first, second, final, chat = samples
    assert first["output"].endswith(TOOL_TARGET_SUFFIX) and "Observation: image/11aa" not in first["instruction"]
    # The second step sees the first step's observation in the scratchpad, as the agent renders it.
    assert second["instruction"].endswith("Observation: image/11aa_edge_abcd1234_abcd1234.png\n")
    assert isinstance(react.parse(second["output"]), react.ToolCall)
    assert final["output"] == react.render_final_step("Here is the dog: image/22bb_canny2image_11aa_abcd1234.png")
    assert chat["output"] == react.render_final_step("Hello!")
    kept, stats = convert_gpt4tools(path, drop_heldout=False)
    assert stats["dropped_heldout"] == 0 and len(kept) == 7


def test_gpt4tools_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="gpt4tools_71k"):
        convert_gpt4tools(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"instruction": "x"}')
    with pytest.raises(ValueError, match="list"):
        convert_gpt4tools(bad)


class _ChatServer(BaseHTTPRequestHandler):
    """A real HTTP server speaking the chat-completions protocol, answering like an LLM would:
    it reads the tools listed in the request and writes blocks in the asked format, some broken."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        tools = [l[2:].split(":")[0] for l in prompt.splitlines() if l.startswith("> ")]
        first = tools[0]
        two_args = "comma separated string of two" in prompt.split(f"> {first}:")[1].split("\n")[0]
        args = "IMAGE, the red car" if two_args else "IMAGE"
        text = (f"Request: please use {first.lower()} on my picture\nTool: {first}\nArguments: {args}\nAnswer: done, see OUTPUT\n\n"
                f"Request: please use {first.lower()} on my picture\nTool: {first}\nArguments: {args}\nAnswer: duplicate\n\n"
                "Request: do something\nTool: Teleport The Cat\nArguments: IMAGE\nAnswer: no\n\n"
                "Request: translate good night into french\nTool: none\nAnswer: Bonne nuit.\n")
        out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                          "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture()
def chat_server():
    srv = HTTPServer(("127.0.0.1", 0), _ChatServer)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_self_instruct_parses_checks_dedupes_and_renders(chat_server):
    captions = ["a cat on a sofa", "two dogs on a beach", "a red car in the rain"]
    samples, stats = generate_self_instruct(captions, model="local-test", base_url=chat_server, api_key="k",
                                            per_caption=4, concurrency=2, seed=1)
    assert stats["asked"] == 3 and stats["parsed"] == 12
    assert stats["rejected"].get("unknown", 0) == 3  # the invented tool name
    # One of the two identical requests per caption is a duplicate; "none" requests repeat too.
    assert stats["kept"] + stats["duplicates"] == 12 - 3 and stats["duplicates"] >= 3
    kinds = {s["kind"] for s in samples}
    assert "self_instruct_no_tool" in kinds and kinds & {"self_instruct", "self_instruct_final"}
    for s in samples:
        parsed = react.parse(s["output"])
        if isinstance(parsed, react.ToolCall):
            path = parsed.tool_input.split(", ")[0]
            if path.endswith(".png") or "/" in path:
                assert path in s["instruction"]  # IMAGE became the conversation's real file name
            assert "IMAGE" not in s["output"] and "OUTPUT" not in s["output"]


def test_efe_finetune_data_command_writes_samples(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert efe_main(["finetune", "data", "offline", "--episodes", "20", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data) >= 20 and {"instruction", "input", "output"} <= set(data[0])
    assert efe_main(["finetune", "data", "offline", "--episodes", "0", "--out", str(out)]) == 2
    assert "episodes" in capsys.readouterr().err
    assert efe_main(["finetune", "data", "gpt4tools", "--input", str(tmp_path / "missing.json"), "--out", str(out)]) == 2
