"""``efe chat``: a scripted chat on a saved tiny model, then a new process continues the thread."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image

from efe_langchain import cli


def _args(model_dir, tmp_path, thread="t1"):
    return [
        "chat", "--model", str(model_dir), "--db", str(tmp_path / "chats.db"), "--thread", thread,
        "--workspace", str(tmp_path / "ws"), "--tools", "Image2Canny_cpu", "--max-new-tokens", "6",
        "--max-tool-steps", "1",
    ]


def test_scripted_chat_then_a_new_process_goes_on(tiny_model_dir, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "red.png"
    Image.new("RGB", (300, 200), (220, 10, 10)).save(photo)
    script = f"/image {photo}\n\nhello there\n/image {tmp_path / 'missing.png'}\n/bogus\n/help\n/history\n/quit\nnever read\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    assert cli.main(_args(tiny_model_dir, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "uploaded " + str(photo) + " as image/" in out
    assert out.count("efe> ") == 1  # one answer: the empty line is skipped, commands are not sent
    assert "error: " in out and "missing.png" in out and "is not an existing file" in out
    assert "unknown command /bogus" in out and "/image PATH" in out
    assert "Human: hello there\nAI: " in out and "never read" not in out

    # a new process, same file and thread: the conversation goes on
    env_cmd = [sys.executable, "-m", "efe_langchain.cli", *_args(tiny_model_dir, tmp_path)]
    done = subprocess.run(env_cmd, input="/history\n", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "continuing conversation 't1'" in done.stderr
    assert "Human: hello there\nAI: " in done.stdout and "Provide an image named image/" in done.stdout

    # another thread of the same file starts empty
    monkeypatch.setattr(sys, "stdin", io.StringIO("/history\n"))
    assert cli.main(_args(tiny_model_dir, tmp_path, thread="other")) == 0
    assert capsys.readouterr().out == ""


def test_chat_with_a_missing_model_folder_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["chat", "--model", str(tmp_path / "nope"), "--workspace", str(tmp_path / "ws")])
    assert code == 2
    assert "efe chat: error:" in capsys.readouterr().err


def test_tool_orders_below_one_is_refused_before_loading():
    import argparse

    from efe_langchain.commands.chat import load_llm

    args = argparse.Namespace(model="embedded", adapter="none", gguf_file=None, max_new_tokens=None, tool_orders=0)
    with pytest.raises(ValueError, match="--tool-orders must be at least 1"):
        load_llm(args)


def test_order_confidence_outside_zero_to_one_is_refused_before_loading():
    import argparse

    from efe_langchain.commands.chat import load_llm

    args = argparse.Namespace(model="embedded", adapter="none", gguf_file=None, max_new_tokens=None, tool_orders=None,
                              order_confidence=1.5)
    with pytest.raises(ValueError, match="--order-confidence must be a probability"):
        load_llm(args)
