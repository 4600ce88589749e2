"""The Streamlit app through ``streamlit.testing.v1.AppTest``, with the real embedded model.

The app starts with only the edge detector selected (``EFE_LOAD``, what ``efe app --load``
sets) and one tool step per turn: the test is about the app (upload, a live tool step, the
result image, persistence, errors), not about which tool a 135M model picks among many, which
the evaluation measures. One tool step also keeps the turn to a single model call.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image

from efe_langchain.ui import agent_setup
from efe_langchain.ui.transcript import Answer, ToolStep, Upload, UserText, build_transcript, workspace_images

APP = str(Path(__file__).resolve().parents[1] / "apps" / "streamlit_app.py")
EDGE = "Edge Detection On Image"
# The first start dequantizes the embedded model (about half a minute); a loaded CPU is slower.
TIMEOUT_S = 600


def astronaut_jpeg() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A fresh workspace, the edge tool only, one tool step per turn (restored afterwards)."""
    workspace = tmp_path_factory.mktemp("app") / "workspace"
    new = {"EFE_WORKSPACE": str(workspace), "EFE_LOAD": "Image2Canny_cpu", "EFE_MAX_TOOL_STEPS": "1"}
    old = {k: os.environ.get(k) for k in new}
    os.environ.update(new)
    yield workspace
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def new_app(thread: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    if thread:
        at.query_params["thread"] = thread
    return at


def captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions]


def edge_statuses(at):
    return [s for s in at.status if EDGE in s.label]


@pytest.fixture(scope="module")
def session(env):
    """One real exchange: upload the astronaut, ask for its edges."""
    at = new_app()
    at.run()
    assert not at.exception, at.exception
    at.sidebar.file_uploader[0].set_value(("astronaut.jpg", astronaut_jpeg(), "image/jpeg"))
    at.run()
    assert not at.exception, at.exception
    at.chat_input[0].set_value("Detect the edges of this image")
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.timeout(TIMEOUT_S * 2)
def test_upload_then_ask_for_edges_shows_the_tool_step_and_the_result_image(session, env):
    at = session
    assert not at.error, [e.value for e in at.error]
    thread = at.query_params["thread"]
    assert re.fullmatch(r"[0-9a-f]{16}", thread)

    # The upload went through the workspace: GPT4Tools name and size (512 on the longer side).
    uploads = [c.removeprefix("Uploaded as ") for c in captions(at) if c.startswith("Uploaded as ")]
    assert len(uploads) == 1 and re.fullmatch(r"image/[0-9a-f]{8}\.png", uploads[0])
    assert Image.open(env / uploads[0]).size == (512, 512)
    assert "Received." in [m.value for m in at.markdown]

    # The tool step, finished, with its input (the uploaded image) and the result image.
    steps = edge_statuses(at)
    assert len(steps) == 1 and steps[0].state == "complete", [(s.label, s.state) for s in at.status]
    step = steps[0]
    assert uploads[0] in [c.value for c in step.code]
    results = [c for img in step.image for c in img.captions]
    assert len(results) == 1 and re.fullmatch(r"image/[0-9a-f]{4}_edge_[0-9a-f]{8}_[0-9a-f]{8}\.png", results[0])

    # The result is the upload's edge map: bright pixels where the photo's gradient is strong.
    edges = np.asarray(Image.open(env / results[0]).convert("L"), dtype=np.float32) > 127
    photo = np.asarray(Image.open(env / uploads[0]).convert("L"), dtype=np.float32)
    gy, gx = np.gradient(photo)
    grad = np.hypot(gx, gy)
    assert 0.01 < edges.mean() < 0.4
    assert grad[edges].mean() > 2 * grad[~edges].mean()

    # The turn ended with an assistant message after the step (an answer or the step limit).
    assistant = [m for m in at.chat_message if m.name == "assistant"]
    assert assistant and any(md.value.strip() for md in assistant[-1].markdown if md.value not in ("**Input**", "**Output**"))


@pytest.mark.timeout(TIMEOUT_S)
def test_the_conversation_comes_back_after_a_server_restart(session, env):
    import streamlit as st

    thread = session.query_params["thread"]
    before = captions(session)
    # A restarted server has no cached agent: it opens the SQLite checkpointer anew.
    st.cache_resource.clear()
    at = new_app(thread)
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["thread"] == thread
    assert captions(at) == before
    assert [s.label for s in edge_statuses(at)] == [s.label for s in edge_statuses(session)]
    assert "Detect the edges of this image" in [m.value for m in at.markdown]
    assert (env / agent_setup.CONVERSATIONS_FILE).is_file()


@pytest.mark.timeout(TIMEOUT_S)
def test_new_conversation_starts_an_empty_thread_and_keeps_the_old_one(session, env):
    thread = session.query_params["thread"]
    at = new_app(thread)
    at.run()
    assert at.chat_message, "the old conversation should be shown first"
    at.sidebar.button[0].click()
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["thread"] != thread
    assert not at.chat_message
    # The old conversation is listed by what the user asked, and opens again from the list.
    picker = next(s for s in at.sidebar.selectbox if s.label == "Earlier conversations")
    assert picker.value == at.query_params["thread"]
    assert picker.format_func(thread) == "Detect the edges of this image"
    picker.set_value(thread)
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["thread"] == thread
    assert captions(at) == captions(session)


@pytest.mark.timeout(TIMEOUT_S)
def test_a_bad_upload_is_an_error_message_not_a_crash(env):
    at = new_app()
    at.run()
    at.sidebar.file_uploader[0].set_value(("holiday.png", b"this is not a picture", "image/png"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("Could not use holiday.png" in e and "not an image" in e for e in errors), errors
    assert not at.chat_message  # nothing was added to the conversation


@pytest.mark.timeout(TIMEOUT_S)
def test_sidebar_lists_tools_with_backends_and_greys_out_those_that_cannot_run(env):
    at = new_app()
    at.run()
    rows = agent_setup.tool_rows("cpu")
    assert any(not r.available for r in rows) and any(r.available for r in rows)
    boxes = {b.key: b for b in at.sidebar.checkbox}
    for row in rows:
        box = boxes[f"tool-{row.name}"]
        assert box.label == row.title
        assert box.disabled == (not row.available)
        if not row.available:
            assert not box.value and row.reason and row.reason in box.help
    # Only the preset tool starts ticked; its backend and device are shown.
    assert [b.label for b in at.sidebar.checkbox if b.value] == [EDGE]
    assert any("opencv-canny (classical) · cpu" in c.value for c in at.sidebar.caption)


@pytest.mark.timeout(TIMEOUT_S)
def test_a_model_that_cannot_load_is_an_error_message_and_the_page_stays_up(env, tmp_path):
    at = new_app()
    at.run()
    at.sidebar.radio[0].set_value("local")
    at.sidebar.text_input[0].set_value(str(tmp_path / "no-such-model"))
    next(b for b in at.sidebar.button if b.label == "Use this model").click()
    at.run()
    assert not at.exception, at.exception
    assert any("Could not load" in e.value and "no-such-model" in e.value for e in at.error), [e.value for e in at.error]
    assert at.chat_input[0].disabled


# -- the transcript, without Streamlit -----------------------------------------------------------
def test_transcript_groups_messages_into_turns_and_shows_only_real_workspace_images(tmp_path):
    (tmp_path / "image").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "image" / "ab12cd34.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "image" / "9f9f_edge_ab12cd34_ab12cd34.png")
    messages = [
        HumanMessage("Provide an image named image/ab12cd34.png. Description: a cat. Understand the image using tools."),
        AIMessage("Received."),
        HumanMessage("Detect the edges of this image"),
        AIMessage(
            "",
            tool_calls=[{"name": "edge_detection_on_image", "args": {"image_path": "image/ab12cd34.png"}, "id": "c1"}],
            response_metadata={"react_text": "Thought: Do I need to use a tool? Yes\nAction: Edge Detection On Image\nAction Input: image/ab12cd34.png"},
        ),
        ToolMessage("image/9f9f_edge_ab12cd34_ab12cd34.png", tool_call_id="c1", name="edge_detection_on_image",
                    artifact={"path": "image/9f9f_edge_ab12cd34_ab12cd34.png"}),
        AIMessage("Here it is: image/9f9f_edge_ab12cd34_ab12cd34.png (and not image/made0up0.png)"),
        HumanMessage("Read ../secret.png"),
        AIMessage("", tool_calls=[{"name": "read_text_on_image", "args": {"image_path": "../secret.png"}, "id": "c2"}]),
        ToolMessage("Error: '../secret.png' contains '..'", tool_call_id="c2", name="read_text_on_image", status="error"),
    ]
    turns = build_transcript(messages, tmp_path, {"edge_detection_on_image": EDGE})
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert turns[0].items == [Upload("image/ab12cd34.png", "a cat.")]
    assert turns[2].items == [UserText("Detect the edges of this image")]
    step, answer = turns[3].items
    assert isinstance(step, ToolStep) and step.tool == EDGE and step.tool_input == "image/ab12cd34.png"
    assert step.done and not step.failed and step.images == ["image/9f9f_edge_ab12cd34_ab12cd34.png"]
    assert isinstance(answer, Answer) and answer.images == ["image/9f9f_edge_ab12cd34_ab12cd34.png"]
    failed = turns[5].items[0]
    assert failed.tool == "read_text_on_image" and failed.failed and failed.images == []


def test_workspace_images_never_point_outside_the_workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "image").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "image" / "aaaa1111.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    (root / "image" / "link.png").symlink_to(tmp_path / "outside.png")
    text = f"image/aaaa1111.png ../outside.png {tmp_path}/outside.png image/link.png image/missing.png"
    assert workspace_images(text, root) == ["image/aaaa1111.png"]


def test_efe_app_command_line(tmp_path, capsys):
    from efe_langchain.cli import build_parser, main
    from efe_langchain.commands.app import streamlit_command

    args = build_parser().parse_args(["app", "--port", "9123", "--headless", "--", "--theme.base", "dark"])
    cmd = streamlit_command(args)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("efe_langchain/ui/app.py")
    assert Path(cmd[4]).is_file()
    assert cmd[cmd.index("--server.port") + 1] == "9123" and cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[-2:] == ["--theme.base", "dark"] and "--server.headless" in cmd
    # An unknown tool in --load fails before any server starts, naming close matches.
    assert main(["app", "--load", "Image2Cany_cpu", "--workspace", str(tmp_path)]) == 2
    assert "Image2Canny" in capsys.readouterr().err


def test_a_turn_goes_on_to_its_end_when_the_page_stops_watching(tiny_llm, tmp_path):
    """Streamlit stops a script run when the user touches a widget; the turn must not stop too."""
    app = agent_setup.build_agent(tiny_llm, agent_setup.default_choice(), ["edge_detection_on_image"], True, tmp_path, max_tool_steps=1)
    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    agent_setup.upload(app, (tmp_path / "grey.png").read_bytes(), "t1")
    turn = agent_setup.turn_items(app, "Detect the edges of this image", "t1")
    assert next(turn)  # the page saw the first step...
    turn.close()  # ...and was stopped (a lazy turn would stop here, its tool call unanswered)
    assert app.wait("t1", timeout=120)
    messages = agent_setup.history(app, "t1")
    assert isinstance(messages[-1], AIMessage) and not messages[-1].tool_calls  # the turn closed
    assert [m.content for m in messages if isinstance(m, HumanMessage)][-1] == "Detect the edges of this image"
    # A finished turn leaves nothing running, and the next turn may start.
    assert not app.is_running("t1")
    assert list(agent_setup.turn_items(app, "And now?", "t1"))


@pytest.mark.timeout(TIMEOUT_S * 2)
def test_an_openai_compatible_model_from_the_sidebar_runs_the_same_turn(env, tmp_path):
    """The OpenAI choice, against a real local server speaking the protocol (``efe serve``'s app
    over the embedded model): ``ChatOpenAI`` calls our edge tool through native tool calling."""
    from test_serve import _Server  # uvicorn on a free 127.0.0.1 port, stopped at the end

    from efe_langchain.llm import load_embedded_llm
    from efe_langchain.serve import create_app

    with _Server(create_app(load_embedded_llm(), model_name="efe-embedded")) as server:
        at = new_app()
        at.run()
        at.sidebar.radio[0].set_value("openai")
        fields = {t.label: t for t in at.sidebar.text_input}
        fields["OpenAI API key"].set_value("local-server-needs-no-key")
        fields["OpenAI model"].set_value("efe-embedded")
        fields["OpenAI-compatible server URL (optional)"].set_value(server.url)
        next(b for b in at.sidebar.button if b.label == "Use this model").click()
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert any("Model loaded: efe-embedded" in c.value for c in at.sidebar.caption)
        assert at.sidebar.toggle[0].disabled  # constrained decoding is the server's business here

        at.sidebar.file_uploader[0].set_value(("astronaut.jpg", astronaut_jpeg(), "image/jpeg"))
        at.run()
        at.chat_input[0].set_value("Detect the edges of this image")
        at.run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        steps = edge_statuses(at)
        assert len(steps) == 1 and steps[0].state == "complete"
        results = [c for img in steps[0].image for c in img.captions]
        assert len(results) == 1 and (env / results[0]).is_file() and "_edge_" in results[0]


@pytest.mark.timeout(120)
def test_efe_app_starts_streamlit_on_the_page(tmp_path):
    """``efe app`` as ``make run`` starts it: a headless server on 127.0.0.1 that serves the app."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "efe_langchain.cli", "app", "--headless", "--port", str(port), "--workspace", str(tmp_path / "ws")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "efe app did not answer within 90 s"
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()  # `efe app` became the server: this stops it
        try:
            out, _ = proc.communicate(timeout=15)
            stopped = True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate(timeout=15)
            stopped = False
    assert stopped, "SIGTERM to `efe app` did not stop the server"
    assert f"http://127.0.0.1:{port}" in out.decode(errors="replace")


@pytest.mark.timeout(TIMEOUT_S)
def test_a_model_that_fails_mid_turn_is_an_error_in_the_chat_and_the_next_run_is_fine(env):
    """An OpenAI-compatible server that is not there (a closed port on 127.0.0.1)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    at = new_app()
    at.run()
    at.sidebar.radio[0].set_value("openai")
    fields = {t.label: t for t in at.sidebar.text_input}
    fields["OpenAI API key"].set_value("unused")
    fields["OpenAI-compatible server URL (optional)"].set_value(f"http://127.0.0.1:{closed}/v1")
    next(b for b in at.sidebar.button if b.label == "Use this model").click()
    at.run()
    at.chat_input[0].set_value("Hello?")
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Connection" in errors[0], errors
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    # Redrawn from the saved conversation: the failure is still there, once, and input works.
    at.run()
    assert not at.exception
    assert "Hello?" in [m.value for m in at.markdown]
    shown = [e.value for e in at.error] + [m.value for m in at.markdown]
    assert sum("Connection" in v for v in shown) == 1, shown
    assert not at.chat_input[0].disabled


@pytest.mark.timeout(TIMEOUT_S)
def test_an_upload_sentence_typed_in_the_chat_shows_no_file_from_outside_the_workspace(env):
    """The upload turn is plain text: a user can type it with a path out of the workspace, and
    the page, which draws that turn as an upload, must not display the file."""
    secret = env.parent / "secret.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(secret)
    at = new_app()
    at.run()
    at.chat_input[0].set_value("Provide an image named ../secret.png. Description: mine. Understand the image using tools.")
    at.run()
    at.run()  # redrawn from the saved conversation, where it reads as an upload turn
    assert not at.exception, at.exception
    shown = [c for img in at.image for c in img.captions]
    assert not any("secret" in c for c in shown), shown
    assert any("../secret.png is not an image in the workspace" in c.value for c in at.caption)
