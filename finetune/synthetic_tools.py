"""A vocabulary of made-up tools with GPT4Tools-style names and descriptions.

A model trained only on the 24 GPT4Tools tools learns their names by heart and calls them whatever
the prompt lists. Mixing in many tools it must tell apart by their descriptions (each family with
two names and two differently worded descriptions) is what lets it use tools it has never seen.
Families are data in ``finetune/data/synthetic_tools.txt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["SyntheticFamily", "SyntheticTool", "load_synthetic_families", "synthetic_tools", "ARG_LABELS"]

# What each slot is called in a tool description ("representing the image_path and the ...").
ARG_LABELS = {
    "obj": "text description of the object",
    "color": "color",
    "amount": "brightness change",
    "angle": "rotation angle",
    "size": "target size",
    "material": "frame style",
    "text": "text to write",
    "style": "art style",
    "season": "season",
    "weather": "weather",
    "sky": "sky description",
    "emotion": "expression",
    "agechange": "age change",
    "position": "direction to move",
    "light": "lighting description",
    "desc": "text description",
    "data": "data to plot",
    "link": "text or link to encode",
    "img": "image_path of the second image",
    "region": "region of the image",
    "number": "number",
    "format": "file format",
    "percent": "percentage",
    # Same values as position / angle, for tools where they mean a side to point at or a direction of
    # light, not a move or a rotation (the labels of held-out tools must not teach other jobs).
    "direction": "direction",
    "degrees": "angle",
}

_DESCRIPTION_STYLES = (
    "useful when you want to {gist}. like: {like}. The input to this tool should be {inputs}",
    "useful when you need to {gist}, for example: {like}. The input to this tool should be {inputs}.",
)
_COUNT_WORDS = {2: "two", 3: "three"}


@dataclass(frozen=True)
class SyntheticFamily:
    """One function (say, blurring the background) under several names."""

    family: str
    group: str
    names: tuple[str, ...]
    gist: str
    likes: tuple[str, ...]
    args: tuple[str, ...]  # ("img",), ("img", "obj"), ("desc",) ...
    output: str  # image | text
    train: tuple[str, ...]
    val: tuple[str, ...]
    # What a text-output tool answers (optional 10th field), so its Observation is not a bare "done".
    observations: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyntheticTool:
    """One alias of a family as a prompt lists it: ``name``, ``description``, ``n_args``."""

    name: str
    description: str
    family: SyntheticFamily

    @property
    def n_args(self) -> int:
        return len(self.family.args)


def _split(field: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in field.split(";") if p.strip())


@lru_cache(maxsize=None)
def load_synthetic_families() -> tuple[SyntheticFamily, ...]:
    text = resources.files("efe_langchain.finetune").joinpath("data", "synthetic_tools.txt").read_text(encoding="utf-8")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) not in (9, 10):
            raise ValueError(f"synthetic_tools.txt: expected 9 or 10 '|' fields, got {len(fields)}: {line[:60]!r}")
        family, group, names, gist, likes, args, output, train, val = fields[:9]
        observations = _split(fields[9]) if len(fields) == 10 else ()
        if args.startswith("text:"):
            arg_kinds: tuple[str, ...] = (args.split(":", 1)[1],)
        else:
            arg_kinds = tuple(args.split("+"))
        for kind in arg_kinds:
            if kind not in ARG_LABELS:
                raise ValueError(f"synthetic_tools.txt: family {family} has unknown argument kind {kind!r}")
        if output not in ("image", "text"):
            raise ValueError(f"synthetic_tools.txt: family {family} output must be image or text")
        if observations and output != "text":
            raise ValueError(f"synthetic_tools.txt: family {family} lists observations but does not output text")
        out.append(SyntheticFamily(family, group, _split(names), gist, _split(likes), arg_kinds, output,
                                   _split(train), _split(val), observations))
    return tuple(out)


def _inputs_phrase(args: tuple[str, ...]) -> str:
    labels = ["image_path" if (i == 0 and a == "img") else ARG_LABELS[a] for i, a in enumerate(args)]
    # Two slots of one kind (two colors) must still be told apart in the description.
    for label in set(labels):
        if labels.count(label) == 2:
            first = labels.index(label)
            labels[first], labels[labels.index(label, first + 1)] = f"first {label}", f"second {label}"
    if len(labels) == 1:
        return f"a string, representing the {labels[0]}"
    joined = ", the ".join(labels[1:-1])
    tail = f"the {labels[0]}" + (f", the {joined}" if joined else "") + f" and the {labels[-1]}"
    return f"a comma separated string of {_COUNT_WORDS[len(labels)]}, representing {tail}"


def _description(fam: SyntheticFamily, style: int) -> str:
    likes = list(fam.likes)
    like = ", or ".join(likes) if style == 0 else "; ".join(reversed(likes))
    return _DESCRIPTION_STYLES[style % len(_DESCRIPTION_STYLES)].format(
        gist=fam.gist, like=like, inputs=_inputs_phrase(fam.args))


@lru_cache(maxsize=None)
def synthetic_tools() -> tuple[SyntheticTool, ...]:
    """Every alias of every family, each alias with its own wording of the description."""
    tools = []
    for fam in load_synthetic_families():
        for i, name in enumerate(fam.names):
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9 '-]+", name):
                raise ValueError(f"synthetic tool name {name!r} has characters a ReAct prompt cannot carry")
            tools.append(SyntheticTool(name, _description(fam, i), fam))
    return tuple(tools)
