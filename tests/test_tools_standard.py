"""langchain-tests standard suites (unit and integration) over representative tools: one and two
image arguments, three arguments, a text-only generator, and tools on each backend kind."""

from __future__ import annotations

import tempfile

import pytest
import skimage.data as data
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from PIL import Image

from efe_langchain.tools.annotators import Image2Canny, Image2Line
from efe_langchain.tools.detection import FaceFinding, ObjectCropping, Text2Box
from efe_langchain.tools.editing import InstructPix2Pix, RemoveObject, ReplaceObject
from efe_langchain.tools.extras import QualityRating
from efe_langchain.tools.generation import CannyText2Image, Text2Image
from efe_langchain.tools.segmentation import BackgroundRemoval, ObjectSegmenting, Segmenting
from efe_langchain.workspace import Workspace

# The suites' async tests run on anyio's asyncio backend (sync tests ignore the mark).
pytestmark = pytest.mark.anyio

_WS: dict[str, object] = {}


def _workspace() -> tuple[Workspace, str]:
    """One workspace with the astronaut in it, shared by every suite of this module."""
    if "ws" not in _WS:
        ws = Workspace(tempfile.mkdtemp(prefix="efe-std-tools-"))
        _WS["ws"], _WS["image"] = ws, ws.add_image(Image.fromarray(data.astronaut()))
    return _WS["ws"], _WS["image"]


def _example(tool_cls, image: str) -> dict:
    fields = [f for f, info in tool_cls.model_fields["args_schema"].default.model_fields.items() if info.is_required()]
    values = {"image_path": image, "text": "face", "question": "what is in the image?",
              "object_to_replace": "face", "replace_with": "a cat's face"}  # fmt: skip
    return {f: values[f] for f in fields}


def _suite(base, tool_cls):
    class Suite(base):
        @property
        def tool_constructor(self):
            return tool_cls

        @property
        def tool_constructor_params(self):
            return {"workspace": _workspace()[0]}

        @property
        def tool_invoke_params_example(self):
            return _example(tool_cls, _workspace()[1])

    Suite.__name__ = Suite.__qualname__ = f"Test{'Unit' if base is ToolsUnitTests else 'Integration'}{tool_cls.__name__}"
    return Suite


# Schema-level checks hold for every kind of tool, runnable here or not.
for _cls in (Image2Canny, Text2Box, ReplaceObject, Text2Image, CannyText2Image, InstructPix2Pix, QualityRating):
    globals()[f"TestUnit{_cls.__name__}"] = _suite(ToolsUnitTests, _cls)

# Real runs on the astronaut: classical, embedded and composite tools that run on this machine.
for _cls in (Image2Canny, Image2Line, Segmenting, FaceFinding, Text2Box, ObjectSegmenting, ObjectCropping,
             RemoveObject, BackgroundRemoval, QualityRating):  # fmt: skip
    globals()[f"TestIntegration{_cls.__name__}"] = _suite(ToolsIntegrationTests, _cls)
