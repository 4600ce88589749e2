"""Which tools exist, which backends can run each one here, and loading them by GPT4Tools specs.

Backends are named by dotted path strings and imported only when needed, so a backend module
that is missing or broken never breaks ``import efe_langchain.tools``: it shows as unavailable
with the import error. Besides the table, every module of ``efe_langchain.backends.embedded`` and
``efe_langchain.backends.reference`` is scanned for Backend subclasses, so a backend added there
is offered without editing this file.

Choice of backend per capability: the reference checkpoint when its weights are present, else
the embedded model, else the classical method (``prefer`` changes the order). A tool lists
alternative capability sets (``plans``); the first one whose every capability has a runnable
backend is bound. Backend instances are cached by (class, device, options), so every tool that
needs the same model shares one instance, and weights load once.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
import threading
import warnings
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from efe_langchain.backends.base import Backend
from efe_langchain.tools.annotators import (
    Image2Canny,
    Image2Depth,
    Image2Hed,
    Image2Line,
    Image2Normal,
    Image2Pose,
    Image2Scribble,
)
from efe_langchain.tools.base import EFETool, snake_name
from efe_langchain.tools.captioning import ImageCaptioning, VisualQuestionAnswering
from efe_langchain.tools.detection import FaceFinding, ObjectCropping, Text2Box
from efe_langchain.tools.editing import InstructPix2Pix, RemoveObject, ReplaceObject
from efe_langchain.tools.extras import BackgroundBlurring, ImageEnhancing, QualityRating, TextReading
from efe_langchain.tools.generation import (
    CannyText2Image,
    DepthText2Image,
    HedText2Image,
    LineText2Image,
    NormalText2Image,
    PoseText2Image,
    ScribbleText2Image,
    SegText2Image,
    Text2Image,
)
from efe_langchain.tools.segmentation import BackgroundRemoval, ObjectSegmenting, Segmenting
from efe_langchain.workspace import Workspace

__all__ = [
    "TOOL_CLASSES",
    "BACKENDS",
    "BackendInfo",
    "ToolInfo",
    "list_tools",
    "load_tools",
    "parse_spec",
    "resolve_backends",
    "get_backend",
    "backend_classes",
    "clear_backend_cache",
]

# The 24 GPT4Tools tools in tools.json order, then ours.
TOOL_CLASSES: tuple[type[EFETool], ...] = (
    InstructPix2Pix,
    Text2Image,
    ImageCaptioning,
    Image2Canny,
    CannyText2Image,
    Image2Line,
    LineText2Image,
    Image2Hed,
    HedText2Image,
    Image2Scribble,
    ScribbleText2Image,
    Image2Pose,
    PoseText2Image,
    SegText2Image,
    Image2Depth,
    DepthText2Image,
    Image2Normal,
    NormalText2Image,
    VisualQuestionAnswering,
    Segmenting,
    Text2Box,
    ObjectSegmenting,
    RemoveObject,
    ReplaceObject,
    TextReading,
    FaceFinding,
    ObjectCropping,
    BackgroundRemoval,
    BackgroundBlurring,
    QualityRating,
    ImageEnhancing,
)

_C = "efe_langchain.backends.classical:"
# capability -> backend classes known to implement it, best first within a kind. Modules of
# the embedded and reference packages are scanned as well (see module docstring).
BACKENDS: dict[str, tuple[str, ...]] = {
    "edges": (_C + "CannyEdges",),
    "lines": (_C + "LineSegments",),
    "faces": ("efe_langchain.backends.embedded.mediapipe_models:MediaPipeFaces", _C + "HaarFaces"),
    "pose": ("efe_langchain.backends.embedded.mediapipe_models:MediaPipePose",),
    "person_mask": ("efe_langchain.backends.embedded.mediapipe_models:MediaPipePersonSegmentation",),
    "hed": ("efe_langchain.backends.embedded.hed:HEDBackend",),
    "scribble": ("efe_langchain.backends.embedded.hed:HEDBackend",),
    "inpaint": (_C + "TeleaInpaint",),
    "segment_box": (_C + "GrabCutSegmenter",),
    "foreground_mask": (_C + "GrabCutSegmenter",),
    "segment_all": (_C + "FelzenszwalbSegmenter",),
    "quality": (_C + "ImageQuality",),
    "enhance": (_C + "AutoEnhance",),
    "instruct": ("efe_langchain.backends.keyword_editor:KeywordEditor",),
}
DISCOVER_PACKAGES = ("efe_langchain.backends.embedded", "efe_langchain.backends.reference")
KIND_ORDER = ("reference", "embedded", "classical")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?|mps(:\d+)?|xpu(:\d+)?)$")


@dataclass
class BackendInfo:
    """One backend that could serve a capability of a tool, and whether it can run here."""

    capability: str
    path: str
    name: str
    kind: str
    label: str
    available: bool
    reason: str


@dataclass
class ToolInfo:
    """A tool, every backend that could serve it, and what it would run on here."""

    name: str
    gpt4tools_name: str
    load_name: str
    description: str
    n_args: int
    in_gpt4tools: bool
    available: bool
    chosen: dict[str, str] = field(default_factory=dict)  # capability -> backend name
    backends: list[BackendInfo] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# -- backend classes ----------------------------------------------------------------------------
_class_cache: dict[str, type[Backend] | str] = {}
_discovered: list[str] | None = None
_lock = threading.RLock()


def _import_class(path: str) -> type[Backend] | str:
    """The class at ``module:Class``, or the reason it cannot be imported (a string)."""
    with _lock:
        if path not in _class_cache:
            module_name, _, cls_name = path.partition(":")
            try:
                obj = getattr(importlib.import_module(module_name), cls_name)
            except ModuleNotFoundError as exc:
                _class_cache[path] = f"module {exc.name} is not installed or not written yet"
            except Exception as exc:  # a broken module of another area must not break the registry
                _class_cache[path] = f"cannot import {path}: {type(exc).__name__}: {exc}"
            else:
                ok = isinstance(obj, type) and issubclass(obj, Backend)
                _class_cache[path] = obj if ok else f"{path} is not a Backend subclass"
        return _class_cache[path]


def _discover() -> list[str]:
    """``module:Class`` of every concrete Backend in the embedded and reference packages."""
    global _discovered
    with _lock:
        if _discovered is not None:
            return _discovered
        found: list[str] = []
        for package in DISCOVER_PACKAGES:
            try:
                pkg = importlib.import_module(package)
            except Exception:
                continue
            modules = [package] + [
                f"{package}.{m.name}" for m in pkgutil.iter_modules(getattr(pkg, "__path__", []))
            ]
            for module_name in modules:
                try:
                    module = importlib.import_module(module_name)
                except Exception as exc:
                    warnings.warn(f"backend module {module_name} cannot be imported: {exc}", stacklevel=2)
                    continue
                for obj in vars(module).values():
                    if (
                        isinstance(obj, type)
                        and issubclass(obj, Backend)
                        and obj.name
                        and obj.capabilities
                        and obj.__module__ == module_name
                    ):
                        found.append(f"{module_name}:{obj.__name__}")
        _discovered = found
        return found


def backend_classes(capability: str) -> list[tuple[str, type[Backend] | str]]:
    """Candidates for a capability as ``(path, class or import-failure reason)``, best kind first."""
    paths = list(BACKENDS.get(capability, ()))
    for path in _discover():
        cls = _import_class(path)
        if isinstance(cls, type) and capability in cls.capabilities and path not in paths:
            paths.append(path)
    out = [(p, _import_class(p)) for p in paths]

    def rank(item):
        cls = item[1]
        kind = cls.kind if isinstance(cls, type) else "reference"
        return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)

    return sorted(out, key=rank)


# -- backend instances --------------------------------------------------------------------------
_instances: dict[tuple, Backend] = {}


def _freeze(options: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in options.items()))


def get_backend(cls: type[Backend], device: str = "cpu", **options) -> Backend:
    """The one shared instance of ``cls`` for this device and options (weights load once)."""
    # Non-reference backends run on the CPU whatever the spec says: one instance serves all.
    if cls.kind != "reference":
        device = "cpu"
    key = (cls, device, _freeze(options))
    with _lock:
        if key not in _instances:
            _instances[key] = cls(device=device, **options)
        return _instances[key]


def clear_backend_cache() -> None:
    """Forget shared instances (tests; freeing memory after use)."""
    with _lock:
        _instances.clear()


def _candidates(
    capability: str,
    device: str,
    prefer: Sequence[str] | None,
    options: dict | None,
    need_prompt: bool,
    tool_cls: type[EFETool] | None = None,
) -> list[tuple[BackendInfo, Backend | None]]:
    out = []
    for path, cls in backend_classes(capability):
        if isinstance(cls, str):
            out.append((BackendInfo(capability, path, path.rpartition(":")[2], "?", "", False, cls), None))
            continue
        opts = dict((options or {}).get(cls.name, {}))
        inst = get_backend(cls, device, **opts)
        try:
            ok, why = inst.availability()
        except Exception as exc:  # availability must never take the listing down
            ok, why = False, f"availability check failed: {type(exc).__name__}: {exc}"
        if ok and need_prompt and not getattr(cls, "follows_prompt", True):
            ok, why = False, "cannot follow a prompt (fills holes only), which this tool needs"
        if ok and tool_cls is not None:
            try:
                unusable = tool_cls.unusable_reason(capability, inst)
            except Exception as exc:
                unusable = f"check failed: {type(exc).__name__}: {exc}"
            if unusable:
                ok, why = False, unusable
        out.append((BackendInfo(capability, path, cls.name, cls.kind, cls.label, ok, why if not ok else ""), inst))
    if prefer:
        order = list(prefer) + [k for k in KIND_ORDER if k not in prefer]
        out.sort(key=lambda t: order.index(t[0].kind) if t[0].kind in order else len(order))
    return out


def resolve_backends(
    tool_cls: type[EFETool],
    device: str = "cpu",
    prefer: Sequence[str] | None = None,
    options: dict | None = None,
) -> tuple[dict[str, Backend] | None, str]:
    """The backends the tool runs on here (capability -> instance), or ``(None, why not)``."""
    bound, _infos, reason = _resolve(tool_cls, device, prefer, options)
    return bound, reason


def _resolve(tool_cls, device, prefer, options):
    infos: list[BackendInfo] = []
    seen: set[tuple[str, str]] = set()
    bound_plan: dict[str, Backend] | None = None
    for plan in tool_cls.plans:
        chosen: dict[str, Backend] = {}
        for cap in plan:
            cands = _candidates(cap, device, prefer, options, cap in tool_cls.needs_prompt, tool_cls)
            for info, _ in cands:
                if (cap, info.path) not in seen:
                    seen.add((cap, info.path))
                    infos.append(info)
            pick = next((inst for info, inst in cands if info.available and inst is not None), None)
            if pick is not None:
                chosen[cap] = pick
        if bound_plan is None and len(chosen) == len(plan):
            bound_plan = chosen
    if bound_plan is not None:
        # Plan order is the tool's intent (a plan may pair a specialist with a fallback), so the
        # first plan that runs wins even when a later one would use a "better" kind.
        return bound_plan, infos, ""
    return None, infos, _why_not(tool_cls, infos)


def _why_not(tool_cls: type[EFETool], infos: list[BackendInfo]) -> str:
    """What is missing for the plan closest to running (fewest capabilities without a backend)."""
    runnable = {i.capability for i in infos if i.available}
    plan = min(tool_cls.plans, key=lambda p: sum(cap not in runnable for cap in p))
    parts = []
    for cap in plan:
        if cap in runnable:
            continue
        mine = [i for i in infos if i.capability == cap]
        if not mine:
            parts.append(f"{cap}: no backend implements it yet")
        else:
            parts.append(f"{cap}: " + "; ".join(f"{i.name} ({i.kind}): {i.reason}" for i in mine))
    return "no runnable backend. " + " | ".join(parts)


# -- listing ------------------------------------------------------------------------------------
def list_tools(device: str = "cpu", prefer: Sequence[str] | None = None, options: dict | None = None) -> list[ToolInfo]:
    """Every tool with every candidate backend, whether each can run here, and the one chosen."""
    out = []
    for cls in TOOL_CLASSES:
        spec = cls.spec()
        bound, infos, reason = _resolve(cls, device, prefer, options)
        out.append(
            ToolInfo(
                name=snake_name(spec.name),
                gpt4tools_name=spec.name,
                load_name=cls.spec_load_name(),
                description=spec.description,
                n_args=spec.n_args,
                in_gpt4tools=bool(spec.reference_checkpoint),
                available=bound is not None,
                chosen={cap: b.name for cap, b in (bound or {}).items()},
                backends=infos,
                reason=reason,
            )
        )
    return out


# -- specs --------------------------------------------------------------------------------------
def _names_of(cls: type[EFETool]) -> list[str]:
    spec = cls.spec()
    load = cls.spec_load_name()
    names = [load, load.split(".")[0], spec.name, snake_name(spec.name), cls.__name__]
    return [n for n in dict.fromkeys(names) if n]


def _index() -> dict[str, list[type[EFETool]]]:
    index: dict[str, list[type[EFETool]]] = {}
    for cls in TOOL_CLASSES:
        for n in _names_of(cls):
            index.setdefault(n.lower(), [])
            if cls not in index[n.lower()]:
                index[n.lower()].append(cls)
    return index


def parse_spec(spec: str | Iterable[str], default_device: str = "cpu") -> list[tuple[type[EFETool], str]]:
    """``"Image2Canny_cpu,Text2Box_cuda:0"`` or a list of names -> ``[(tool class, device)]``.

    A name is a GPT4Tools ``--load`` class (``ImageEditing`` gives remove and replace), a
    GPT4Tools tool name, a snake_case tool name or a tool class name; ``_device`` is optional
    (``default_device`` when absent).
    """
    items = [s for s in (spec.split(",") if isinstance(spec, str) else spec)]
    index = _index()
    out: list[tuple[type[EFETool], str]] = []
    for raw in items:
        item = str(raw).strip()
        if not item:
            continue
        name, device = item, default_device
        head, sep, tail = item.rpartition("_")
        if sep and _DEVICE_RE.match(tail):
            name, device = head, tail
        classes = index.get(name.strip().lower())
        if classes is None:
            originals = {n.lower(): n for cls in TOOL_CLASSES for n in _names_of(cls)}
            close = difflib.get_close_matches(name.lower(), list(index), n=4, cutoff=0.6)
            shown = [originals[k] for k in close]
            hint = f" Close matches: {', '.join(shown)}." if shown else ""
            raise ValueError(f"unknown tool {name!r} in the spec.{hint} Run `efe tools` for every name.")
        for cls in classes:
            if all(c is not cls for c, _ in out):
                out.append((cls, device))
    return out


def load_tools(
    spec: str | Iterable[str] | None = None,
    workspace: Workspace | str | None = None,
    only_available: bool = True,
    *,
    device: str = "cpu",
    prefer: Sequence[str] | None = None,
    options: dict | None = None,
) -> list[EFETool]:
    """Tool instances for a GPT4Tools-style spec, or every tool that can run here (``spec=None``).

    Tools that cannot run are left out (with a warning naming what is missing when the spec
    asked for them) unless ``only_available=False``, in which case they are returned and answer
    each call with that reason. ``options`` maps a backend name to keyword options for it.
    """
    if workspace is None:
        from efe_langchain.tools.base import default_workspace

        ws = default_workspace()
    else:
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    requested = parse_spec(spec) if spec is not None else [(c, device) for c in TOOL_CLASSES]
    tools: list[EFETool] = []
    for cls, dev in requested:
        bound, reason = resolve_backends(cls, dev, prefer, options)
        if bound is None:
            if not only_available:
                tools.append(cls(workspace=ws, device=dev))
            elif spec is not None:
                warnings.warn(f"{cls.spec().name} is not loaded: {reason}", stacklevel=2)
            continue
        tools.append(cls(workspace=ws, device=dev, backends=bound))
    return tools
