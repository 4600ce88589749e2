"""``efe app``: start the Streamlit app (chat with your images) on the embedded default model.

The page itself is ``efe_langchain/ui/app.py`` so that it ships inside the installed package;
``apps/streamlit_app.py`` in a checkout runs the same page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "streamlit_command", "page_path"]


def page_path() -> Path:
    from efe_langchain.ui import app

    return Path(app.__file__).resolve()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        default=None,
        help="folder for images and the saved conversations (default: $EFE_WORKSPACE or ./workspace)",
    )
    parser.add_argument(
        "--load",
        default=None,
        help="tools selected at start, as a GPT4Tools spec: Image2Canny_cpu,ImageEditing_cpu (default: every tool that can run)",
    )
    parser.add_argument("--max-tool-steps", type=int, default=None, help="tool steps per turn at most (default: 6)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: %(default)s)")
    parser.add_argument("--headless", action="store_true", help="do not open a browser window")
    parser.add_argument(
        "streamlit_args",
        nargs=argparse.REMAINDER,
        help="further options for `streamlit run` after `--`, e.g. -- --theme.base dark",
    )


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line ``efe app`` executes."""
    extra = list(args.streamlit_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(page_path()),
        "--server.address", args.host,
        "--server.port", str(args.port),
        # Usage statistics would try to reach the network from the user's browser.
        "--browser.gatherUsageStats", "false",
        # A local tool, not a hosted app: no "Deploy" button, and no first-run email question
        # holding `make run` at a terminal prompt.
        "--client.toolbarMode", "minimal",
        "--server.showEmailPrompt", "false",
    ]
    if args.headless:
        cmd += ["--server.headless", "true"]
    return cmd + extra


def run(args: argparse.Namespace) -> int:
    try:
        import streamlit  # noqa: F401
    except ModuleNotFoundError:
        print("efe app: streamlit is not installed; install the app extra: pip install 'efe-langchain[app]'", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if args.workspace:
        env["EFE_WORKSPACE"] = str(Path(args.workspace).expanduser().resolve())
    if args.load:
        from efe_langchain.ui.agent_setup import preset_tools

        preset_tools(args.load)  # an unknown tool name fails here, with close matches, not in the page
        env["EFE_LOAD"] = args.load
    if args.max_tool_steps is not None:
        if args.max_tool_steps < 1:
            raise ValueError("--max-tool-steps must be at least 1")
        env["EFE_MAX_TOOL_STEPS"] = str(args.max_tool_steps)
    cmd = streamlit_command(args)
    print(
        f"efe app: http://{args.host}:{args.port}  (workspace: {env.get('EFE_WORKSPACE') or Path('workspace').resolve()})",
        flush=True,
    )
    if os.name == "posix":
        # Become the server, so that a signal to `efe app` (Ctrl-C, a service manager) reaches it.
        os.execve(cmd[0], cmd, env)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
