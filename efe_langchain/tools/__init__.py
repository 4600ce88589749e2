"""Visual tools as LangChain tools, and the registry that binds them to backends.

``load_tools(["Image2Canny_cpu", "Text2Box_cuda:0"])`` gives GPT4Tools' ``--load`` behaviour;
``load_tools()`` gives every tool that can run here. Names import lazily (langchain-core and the
tool modules load on first use). The tools drop into any LangChain agent::

    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI
    from efe_langchain import Workspace, load_tools

    ws = Workspace("workspace")
    photo = ws.add_image("holiday.jpg")            # -> "image/1a2b3c4d.png"
    agent = create_agent(ChatOpenAI(model="gpt-4o-mini"), load_tools(workspace=ws))
    agent.invoke({"messages": [("user", f"Detect the edges of {photo}")]})

``efe tools`` lists every tool, its backends and what each needs to run here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EFETool": "efe_langchain.tools.base",
    "snake_name": "efe_langchain.tools.base",
    "ImageInput": "efe_langchain.tools.base",
    "ImageTextInput": "efe_langchain.tools.base",
    "TextInput": "efe_langchain.tools.base",
    "default_workspace": "efe_langchain.tools.base",
    "BackendInfo": "efe_langchain.tools.registry",
    "ToolInfo": "efe_langchain.tools.registry",
    "TOOL_CLASSES": "efe_langchain.tools.registry",
    "list_tools": "efe_langchain.tools.registry",
    "load_tools": "efe_langchain.tools.registry",
    "parse_spec": "efe_langchain.tools.registry",
    "resolve_backends": "efe_langchain.tools.registry",
    "get_backend": "efe_langchain.tools.registry",
    "ImageCaptioning": "efe_langchain.tools.captioning",
    "VisualQuestionAnswering": "efe_langchain.tools.captioning",
    "Text2Box": "efe_langchain.tools.detection",
    "FaceFinding": "efe_langchain.tools.detection",
    "ObjectCropping": "efe_langchain.tools.detection",
    "Segmenting": "efe_langchain.tools.segmentation",
    "ObjectSegmenting": "efe_langchain.tools.segmentation",
    "BackgroundRemoval": "efe_langchain.tools.segmentation",
    "InstructPix2Pix": "efe_langchain.tools.editing",
    "RemoveObject": "efe_langchain.tools.editing",
    "ReplaceObject": "efe_langchain.tools.editing",
    "Text2Image": "efe_langchain.tools.generation",
    "CannyText2Image": "efe_langchain.tools.generation",
    "LineText2Image": "efe_langchain.tools.generation",
    "HedText2Image": "efe_langchain.tools.generation",
    "ScribbleText2Image": "efe_langchain.tools.generation",
    "PoseText2Image": "efe_langchain.tools.generation",
    "SegText2Image": "efe_langchain.tools.generation",
    "DepthText2Image": "efe_langchain.tools.generation",
    "NormalText2Image": "efe_langchain.tools.generation",
    "Image2Canny": "efe_langchain.tools.annotators",
    "Image2Line": "efe_langchain.tools.annotators",
    "Image2Hed": "efe_langchain.tools.annotators",
    "Image2Scribble": "efe_langchain.tools.annotators",
    "Image2Pose": "efe_langchain.tools.annotators",
    "Image2Depth": "efe_langchain.tools.annotators",
    "Image2Normal": "efe_langchain.tools.annotators",
    "TextReading": "efe_langchain.tools.extras",
    "QualityRating": "efe_langchain.tools.extras",
    "ImageEnhancing": "efe_langchain.tools.extras",
    "BackgroundBlurring": "efe_langchain.tools.extras",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'efe_langchain.tools' has no attribute {name!r}")
