"""The tool class every visual tool derives from, and the argument schemas they share.

A tool has two names: ``gpt4tools_name`` ("Edge Detection On Image"), the words the local model
was trained on and sees in its ReAct prompt, and ``name`` ("edge_detection_on_image"), which
OpenAI-style tool calling accepts. It returns ``(content, artifact)``: content is what the model
reads (a new image path or a text answer), artifact a JSON-serialisable record of what happened
(paths, sizes, boxes, scores and the honest label of every backend used).

Tools never import a model library: they call capabilities of backends (``backends/base.py``),
which the registry binds to each tool, sharing one instance between all tools that use it.
Every failure (bad path, wrong argument count, a backend that cannot run, a model error) comes
back to the model as a clear text observation instead of an exception.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from langchain_core.tools import BaseTool, ToolException
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from efe_langchain.backends.base import Backend, BackendUnavailable
from efe_langchain.prompts import ToolSpec, tool_spec
from efe_langchain.react import extract_image_paths, split_args
from efe_langchain.workspace import Workspace, WorkspaceError, default_root

__all__ = [
    "EFETool",
    "ImageInput",
    "ImageTextInput",
    "TextInput",
    "snake_name",
    "ToolException",
]

_SNAKE_RE = re.compile(r"[^a-z0-9]+")
IMAGE_PATH_HELP = "path of an image in the workspace, e.g. image/1a2b3c4d.png"
SEED_HELP = "random seed for a reproducible result (optional)"


def snake_name(gpt4tools_name: str) -> str:
    """``"Detect the Give Object"`` -> ``"detect_the_give_object"`` (OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``)."""
    return _SNAKE_RE.sub("_", gpt4tools_name.lower()).strip("_")[:64]


class ImageInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)


class ImageTextInput(BaseModel):
    image_path: str = Field(description=IMAGE_PATH_HELP)
    text: str = Field(description="the text the tool needs (see the tool description)")


class TextInput(BaseModel):
    text: str = Field(description="the text the tool needs (see the tool description)")


_DEFAULT_WORKSPACES: dict[str, Workspace] = {}


def default_workspace() -> Workspace:
    """One shared workspace per default root (``$EFE_WORKSPACE`` or ``./workspace``)."""
    root = str(default_root())
    if root not in _DEFAULT_WORKSPACES:
        _DEFAULT_WORKSPACES[root] = Workspace(root)
    return _DEFAULT_WORKSPACES[root]


def _tool_error_text(exc: ToolException) -> str:
    return f"Error: {exc}"


def _validation_error_text(exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or 'input'}: {e.get('msg', '')}" for e in exc.errors()
    )
    return f"Error: invalid tool arguments ({problems})"


class EFETool(BaseTool):
    """Base class of the visual tools. Subclasses set the class attributes and ``_execute``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    gpt4tools_name: str = ""
    n_args: int = 1
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: Any = _tool_error_text
    handle_validation_error: Any = _validation_error_text

    workspace: Workspace = Field(default_factory=default_workspace, exclude=True)
    device: str = "cpu"
    # capability -> backend instance; filled by the registry (or lazily on first use).
    backends: dict[str, Backend] = Field(default_factory=dict, exclude=True)

    # -- class attributes subclasses set --------------------------------------------------------
    # The name the local model sees. For the 24 GPT4Tools tools it is looked up in tools.json
    # (description and argument count come from there, verbatim); new tools give `blurb`.
    title: ClassVar[str] = ""
    blurb: ClassVar[str] = ""
    # GPT4Tools `--load` class name (tools.json `reference_class`), or our own for new tools.
    load_name: ClassVar[str] = ""
    # Alternative capability sets, best first: the registry binds the first one that can run.
    plans: ClassVar[tuple[tuple[str, ...], ...]] = ()
    # Capabilities whose backend must draw what a prompt asks (not e.g. Telea's hole filling).
    needs_prompt: ClassVar[frozenset[str]] = frozenset()
    # GPT4Tools' tag in output names: image/<4 hex>_<tag>_<prev>_<org>.png
    output_tag: ClassVar[str] = "update"

    @classmethod
    def spec(cls) -> ToolSpec:
        """The tool as the ReAct prompt shows it (GPT4Tools' words for the 24 tools)."""
        try:
            return tool_spec(cls.title)
        except KeyError:
            schema = cls.model_fields["args_schema"].default
            n = sum(1 for f in schema.model_fields.values() if f.is_required()) if schema else 1
            return ToolSpec(
                name=cls.title, description=cls.blurb, n_args=n, reference_class=cls.load_name, in_training_data=False
            )

    @classmethod
    def unusable_reason(cls, capability: str, backend: Backend) -> str:
        """Why a backend that can run here still cannot serve this tool ("" when it can)."""
        return ""

    @classmethod
    def spec_load_name(cls) -> str:
        return cls.load_name or cls.spec().reference_class

    @model_validator(mode="before")
    @classmethod
    def _fill_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.title:
            spec = cls.spec()
            data = dict(data)
            data.setdefault("gpt4tools_name", spec.name)
            data.setdefault("name", snake_name(spec.name))
            data.setdefault("description", spec.description)
            data.setdefault("n_args", spec.n_args)
        return data

    # -- running --------------------------------------------------------------------------------
    def _run(self, *args: Any, **kwargs: Any) -> tuple[str, dict]:
        kwargs.pop("run_manager", None)
        if args:
            # A plain string input arrives positionally; name it after the schema's first field.
            kwargs = {**dict(zip(self._fields(), args)), **kwargs}
        try:
            content, artifact = self._execute(**kwargs)
        except ToolException:
            raise
        except WorkspaceError as exc:
            raise ToolException(str(exc)) from exc
        except BackendUnavailable as exc:
            raise ToolException(f"{self.gpt4tools_name or self.name} cannot run here: {exc}") from exc
        except ValueError as exc:
            # Backends raise ValueError for input they refuse (a query a detector does not know):
            # its message is written for the user.
            raise ToolException(f"{self.gpt4tools_name or self.name}: {exc}") from exc
        except Exception as exc:  # a model failing is an observation for the agent, not a crash
            raise ToolException(
                f"{self.gpt4tools_name or self.name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        artifact = {"tool": self.name, **artifact}
        artifact.setdefault("backends", self.backend_labels())
        return content, artifact

    def _fields(self) -> dict[str, Any]:
        """The argument schema's fields, in order (none for a schema given as a dict)."""
        return dict(self.args_schema.model_fields) if isinstance(self.args_schema, type) else {}

    def _execute(self, **kwargs: Any) -> tuple[str, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run_react(self, tool_input: str) -> str:
        """Run from a GPT4Tools ``Action Input`` string: comma-separated, the last part keeps commas."""
        required = [f for f, info in self._fields().items() if info.is_required()]
        n = self.n_args
        tool_input = tool_input or ""
        if n == 1 and required == ["image_path"] and "," in tool_input:
            # "image/ab12cd34.png, please" from a small model: the file name is what it meant.
            paths = extract_image_paths(tool_input)
            if len(paths) == 1:
                tool_input = paths[0]
        parts = split_args(tool_input, n)
        if len(parts) != n or any(not p for p in parts):
            names = ", ".join(required[:n]) or "input"
            return (
                f"Error: {self.gpt4tools_name or self.name} takes {n} comma-separated "
                f"input{'s' if n > 1 else ''} ({names}), got {tool_input!r}"
            )
        result = self.invoke(dict(zip(required[:n], parts)))
        return result if isinstance(result, str) else str(result)

    # -- backends -------------------------------------------------------------------------------
    def bind(self) -> dict[str, Backend]:
        """The backends this tool runs on, resolved through the registry if none were given."""
        if not self.backends:
            from efe_langchain.tools.registry import resolve_backends

            bound, reason = resolve_backends(type(self), self.device)
            if bound is None:
                raise ToolException(f"{self.gpt4tools_name or self.name} cannot run here: {reason}")
            self.backends = bound
        return self.backends

    def has(self, capability: str) -> bool:
        return capability in self.bind()

    def backend(self, capability: str) -> Backend:
        """The loaded backend for a capability (weights load on first use, once per process)."""
        bound = self.bind()
        if capability not in bound:
            raise ToolException(f"{self.gpt4tools_name or self.name} has no backend for {capability!r}")
        return bound[capability].load()

    def backend_labels(self) -> dict[str, dict]:
        return {
            cap: {"name": b.name, "kind": b.kind, "label": b.label, "device": b.device}
            for cap, b in self.backends.items()
        }

    # -- helpers for subclasses -----------------------------------------------------------------
    def open(self, image_path: str) -> Image.Image:
        return self.workspace.open_image(image_path)

    def save(self, img: Image.Image, source: str | None, tag: str | None = None) -> tuple[str, dict]:
        """Save an output image; returns (path, artifact fields) for the tool result."""
        rel = self.workspace.save_image(img, tag or self.output_tag, source)
        artifact = {"path": rel, "size": list(img.size)}
        if source is not None:
            artifact["source"] = source
        return rel, artifact

    def save_generated(
        self, out: Image.Image, source: str | None, seed: int | None, size: tuple[int, int] | None = None
    ) -> tuple[str, dict]:
        """Save a generated image, resized to ``size`` if given, with the seed that made it.

        Reference backends draw a seed when none is given and put the one used in
        ``info["seed"]``; the artifact records it so that the result can be reproduced.
        A backend that reports none (a deterministic one) keeps the seed that was asked for.
        """
        used = out.info.get("seed", seed)  # read before resizing: resize() drops info
        if size is not None and out.size != tuple(size):
            out = out.resize(size)
        rel, artifact = self.save(out, source)
        return rel, {**artifact, "seed": None if used is None else int(used)}
