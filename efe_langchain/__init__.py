"""EFE: Empowering LLMs with Fine-grained Image Editing.

Public names are imported lazily so that ``import efe_langchain`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "render_prompt": "efe_langchain.react",
    "parse": "efe_langchain.react",
    "ToolCall": "efe_langchain.react",
    "FinalAnswer": "efe_langchain.react",
    "ParseFailure": "efe_langchain.react",
    "ToolSpec": "efe_langchain.prompts",
    "load_tool_specs": "efe_langchain.prompts",
    "LocalLLM": "efe_langchain.llm",
    "load_embedded_llm": "efe_langchain.llm",
    "ChatEFE": "efe_langchain.chat_model",
    "create_efe_agent": "efe_langchain.agent",
    "EFEAgent": "efe_langchain.agent",
    "Workspace": "efe_langchain.workspace",
    "WorkspaceError": "efe_langchain.workspace",
    "EFETool": "efe_langchain.tools.base",
    "load_tools": "efe_langchain.tools.registry",
    "list_tools": "efe_langchain.tools.registry",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'efe_langchain' has no attribute {name!r}")
