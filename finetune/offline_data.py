"""Tool-use training data without an LLM: one ReAct step per sample, rendered by efe_langchain.react.

Built against the failures of an earlier template generator (issue 7): image paths come in many
shapes and are copied from the conversation; confusable tools are listed together and the request
names what tells them apart; synthetic tools with their own descriptions teach choosing by the
description; text arguments are short and there are never extra ones; text tasks (rewrite,
summarise, translate, classify, explain) are answered without a tool; conversations have earlier
turns and several images; chains run a condition tool and then the generator on its output.

Public API: ``generate_samples(n, seed, split)`` -> list of ``{"instruction", "input", "output",
"kind"}``; ``generate_eval_records(n, seed, split)`` -> records in the validation flavour of
EVAL_FORMAT.md; ``build_catalog(exclude=...)``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Iterable, Sequence

from efe_langchain import react
from efe_langchain.prompts import load_tool_specs

from .phrasings import (
    add_typos,
    image_reference,
    load_no_tool_examples,
    load_real_phrasings,
    random_caption,
    random_description,
    random_image_path,
    random_question,
    random_style,
    slot_value,
    tool_output_path,
    wrap_request,
)
from .synthetic_tools import synthetic_tools

__all__ = [
    "CatalogTool",
    "Episode",
    "build_catalog",
    "heldout_names",
    "UNSEEN_REAL_TOOLS",
    "UNSEEN_SYNTHETIC_FAMILIES",
    "generate_episodes",
    "episode_samples",
    "episode_eval_records",
    "generate_samples",
    "generate_eval_records",
    "TOOL_TARGET_SUFFIX",
]

# The training target of a tool step ends with the marker the model must learn to stop at.
TOOL_TARGET_SUFFIX = "\nObservation:"

# Held out of training as whole tools (every alias), for test_unseen.json.
UNSEEN_REAL_TOOLS = ("Generate Image Condition On Line Image",)
UNSEEN_SYNTHETIC_FAMILIES = ("sharpen", "sepia", "bg_color", "rotate", "watermark", "pixelate", "weather",
                             "bg_remove", "count", "landmark", "icon_gen", "collage", "keypoint", "move_obj")


@lru_cache(maxsize=None)
def heldout_names() -> frozenset[str]:
    """Names of the GPT4Tools zero-shot benchmark, never to appear in generated data."""
    text = resources.files("efe_langchain.finetune").joinpath("heldout_tools.txt").read_text(encoding="utf-8")
    return frozenset(l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#"))


# GPT4Tools argument layout of the real tools: the slots after the image path.
_REAL_ARGS = {
    "Instruct Image Using Text": ("img", "style"),
    "Generate Image From User Input Text": ("desc",),
    "Answer Question About The Image": ("img", "q"),
    "Detect the Give Object": ("img", "obj"),
    "Segment the given object": ("img", "obj"),
    "Remove Something From The Photo": ("img", "obj"),
    "Replace Something From The Photo": ("img", "obj", "obj2"),
}
_TEXT_OUTPUT_REAL = {"Get Photo Description", "Answer Question About The Image"}
# File-name tags Visual ChatGPT puts in its outputs, and how an answer names the result.
_FUNC = {
    "Edge Detection On Image": ("edge", "edge map"), "Line Detection On Image": ("line", "straight line image"),
    "Hed Detection On Image": ("hed", "soft HED boundary image"), "Sketch Detection On Image": ("scribble", "scribble"),
    "Pose Detection On Image": ("human-pose", "pose image"), "Predict Depth On Image": ("depth", "depth map"),
    "Predict Normal Map On Image": ("normal-map", "normal map"), "Segment the Image": ("segmentation", "segmentation"),
    "Segment the given object": ("mask", "mask"), "Detect the Give Object": ("detect-something", "detection result"),
    "Remove Something From The Photo": ("remove-something", "edited image"),
    "Replace Something From The Photo": ("replace-something", "edited image"),
    "Instruct Image Using Text": ("pix2pix", "edited image"),
    "Generate Image From User Input Text": ("text2image", "generated image"),
}
for _n in ("Canny Image", "Line Image", "Soft Hed Boundary Image", "Sketch Image", "Pose Image", "Segmentations",
           "Depth", "Normal Map"):
    _FUNC[f"Generate Image Condition On {_n}"] = (_n.split()[0].lower() + "2image", "new image")

# Answers of the text-output synthetic families written before synthetic_tools.txt had an observations field.
_OBS_TEXT = {
    "count": ["3", "2", "5", "1", "0", "there are 4"], "dominant_color": ["#d9c7a3, #3b5b7a, #f2f2f2", "blue, white and grey"],
    "tags": ["beach, sunset, dog, summer", "city, street, night, lights", "food, pizza, table"],
    "similar": ["similarity: 0.82", "similarity 0.15", "the images are 97% similar"], "exif": ["Canon EOS 80D, 2021-06-12 14:03, f/4", "iPhone 12, 2022-01-03"],
    "nsfw": ["safe", "safe for work", "unsafe: contains violence"], "landmark": ["Eiffel Tower, Paris", "Golden Gate Bridge", "Big Ben, London"],
    "species": ["golden retriever", "sunflower", "european robin", "tabby cat"], "food": ["about 650 kcal", "roughly 420 calories, high in carbs"],
    "emotion_read": ["cheerful", "calm and peaceful", "gloomy"], "measure": ["about 2 meters tall", "roughly 1.5 m long"],
    "position_query": ["left", "top right", "bottom", "center"],
}

# Pairs never listed together: both could serve the request, so any label would be arbitrary.
_CONFLICTS_BY_GROUP = {"Instruct Image Using Text": {"style", "tone", "color"}}
_CONFLICTS_BY_FAMILY = {
    "Instruct Image Using Text": {"sky", "add_obj", "inpaint_region", "expression", "age_edit", "hair", "extend",
                                  # Families added later: edits and overlays a text instruction to pix2pix does as well.
                                  "clothes_color", "wall_paint", "staging", "water_reflection", "confetti", "sparkles",
                                  "lens_flare", "light_leak", "obj_glow", "glow",
                                  "obj_gold", "obj_frozen", "obj_melt", "obj_stylize", "obj_transparent", "sign_text",
                                  "shirt_text", "cake_candles", "window_view", "fireworks", "sun_rays", "spotlight",
                                  "paint_splatter", "papercut", "origami", "hatching", "region_exposure"},
    "Answer Question About The Image": {"count", "position_query", "landmark", "species", "emotion_read", "food",
                                        "dominant_color", "measure",
                                        # Families added later: questions about the picture that VQA answers as well.
                                        "scene_type", "main_subject", "photo_or_art", "fire_check", "ppe_check",
                                        "car_model", "art_style", "ripeness", "mineral", "plant_health", "clock_read",
                                        "gauge_read", "light_direction", "photo_age", "car_damage", "chart_type",
                                        "obj_weight", "obj_distance", "price_guess", "ai_check", "color_at",
                                        "time_of_day", "season_guess", "weather_read", "cloud_type", "sun_elevation",
                                        "shot_type", "camera_angle", "obj_color_name", "obj_motion", "obj_sunlit",
                                        "obj_occlusion", "obj_frame_share", "relation", "obj_gap", "color_share",
                                        "hazard_check", "access_check", "aspect_ratio"},
    "Replace Something From The Photo": {"recolor_obj", "hair", "clothes_color", "wall_paint", "window_view", "obj_gold",
                                         "sign_text"},
    "Remove Something From The Photo": {"region_erase"},
    "Detect the Give Object": {"count", "position_query", "fire_check", "relation", "obj_frame_share", "obj_occlusion"},
    "Get Photo Description": {"tags", "weather_read", "time_of_day", "season_guess", "cloud_type"},
}
# Groups people confuse across the real and synthetic vocabularies.
_NEIGHBOURS = {
    "annotate": {"annotate", "annotate-3d", "annotate-human"}, "annotate-3d": {"annotate", "annotate-3d"},
    "annotate-human": {"annotate", "annotate-human"}, "segment": {"segment", "find"}, "find": {"find", "segment", "analyze"},
    "edit": {"edit", "color", "segment"}, "look": {"look", "analyze"}, "analyze": {"analyze", "look", "find"},
    "generate": {"generate", "gen", "generate-cond"}, "gen": {"gen", "generate"}, "generate-cond": {"generate-cond", "generate"},
    "blur": {"blur", "tone"}, "tone": {"tone", "blur", "color"}, "color": {"color", "tone"}, "style": {"style", "edit"},
    "geometry": {"geometry", "file"}, "overlay": {"overlay", "edit"}, "file": {"file", "geometry"},
}


@dataclass(frozen=True)
class CatalogTool:
    """A tool the generator can list and call, real or synthetic."""

    name: str
    description: str
    family: str
    group: str
    source: str  # real | synthetic
    args: tuple[str, ...]
    output: str  # image | text
    train: tuple[str, ...]
    val: tuple[str, ...]
    cond: str = ""  # for a conditioned generator: the tool that makes its condition image
    observations: tuple[str, ...] = ()  # what a text-output tool answers (synthetic_tools.txt 10th field)

    @property
    def pair(self) -> tuple[str, str]:
        return self.name, self.description


def build_catalog(exclude_families: Iterable[str] = (), only_families: Iterable[str] | None = None) -> list[CatalogTool]:
    """Real and synthetic tools, minus the zero-shot benchmark's and ``exclude_families``."""
    excluded, only = set(exclude_families), (set(only_families) if only_families is not None else None)
    held = heldout_names()
    phr = load_real_phrasings()
    out = []
    for spec in load_tool_specs():
        if spec.name in held or spec.name not in phr:
            continue
        p = phr[spec.name]
        out.append(CatalogTool(spec.name, spec.description, spec.name, p.group, "real",
                               _REAL_ARGS.get(spec.name, ("img", "desc") if spec.n_args == 2 else ("img",)),
                               "text" if spec.name in _TEXT_OUTPUT_REAL else "image",
                               tuple(p.train), tuple(p.val), p.cond))
    for t in synthetic_tools():
        fam = t.family
        if t.name in held:
            raise ValueError(f"synthetic tool {t.name!r} uses a held-out benchmark name")
        observations = fam.observations or tuple(_OBS_TEXT.get(fam.family, ()))
        if fam.output == "text" and not observations:
            # Without answers its Observation would be made up ("done"), and so would the final answer.
            raise ValueError(f"synthetic text tool family {fam.family!r} has no observations (10th field)")
        out.append(CatalogTool(t.name, t.description, fam.family, fam.group, "synthetic", fam.args, fam.output,
                               fam.train, fam.val, observations=observations))
    return [t for t in out if t.family not in excluded and (only is None or t.family in only)]


# ------------------------------------------------------------------------------------------ episode
@dataclass
class Episode:
    """One conversation moment: listed tools, history, the request and the steps that answer it."""

    tools: list[CatalogTool]
    history: list[str]
    request: str
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (tool, input, observation)
    answer: str = ""
    kind: str = ""
    caption: str = ""
    filename: str = ""


@dataclass
class _Ctx:
    rng: random.Random
    split: str
    catalog: list[CatalogTool]
    by_name: dict[str, CatalogTool]
    images: list[str] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)
    nouns: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)


def _pool(tool: CatalogTool, split: str) -> tuple[str, ...]:
    return tool.val if (split == "val" and tool.val) else tool.train


_VQA_ANSWERS = {"how many": ["two", "3", "one", "four"], "what color": ["red", "white", "blue", "black and white"],
                "is ": ["yes", "no"], "are ": ["yes", "no"]}


def _vqa_answer(rng: random.Random, question: str) -> str:
    for key, values in _VQA_ANSWERS.items():
        if question.startswith(key):
            return rng.choice(values)
    return rng.choice(["a frisbee", "in a park", "a wooden table", "sleeping", "the ocean", "a red umbrella", "morning"])


def _add_image(ctx: _Ctx, path: str | None = None) -> str:
    path = path or random_image_path(ctx.rng, ctx.split)
    caption, noun = random_caption(ctx.rng)
    ctx.images.append(path)
    ctx.captions[path], ctx.nouns[path] = caption, noun
    ctx.history.append(react.render_image_turn(path, caption))
    return path


def _text_answer_templates(observation: str) -> list[str]:
    """How a final answer carries a text tool's result; the sentence forms only where they read well
    (not "It looks like yes, it has transparent pixels.", "Https://example.com.", "came....")."""
    words = observation.split() or [""]
    plain = observation[-1:] not in ".!?)" and not re.search(r"[/#@]|www\.", observation)  # no link, code or end mark
    short_phrase = plain and "," not in observation and len(words) <= 8 and words[0].lower() not in ("yes", "no")
    sentence = plain and observation[:1].isalpha()
    return (["{o}", "{o}", "The answer is: {o}"] + ["It looks like {o}."] * short_phrase + ["{O}."] * sentence
            + ["Result: {o}"])


def _final_answer(ctx: _Ctx, tool: CatalogTool, observation: str) -> str:
    rng = ctx.rng
    if tool.output == "text":
        return rng.choice(_text_answer_templates(observation)).replace(
            "{o}", observation).replace("{O}", observation[:1].upper() + observation[1:])
    what = _FUNC.get(tool.name, ("", "result"))[1] if tool.source == "real" else "result"
    return rng.choice([
        "Here is the {w}: {p}", "{p}", "Done! The {w} is saved as {p}.", "Here you go: {p}",
        "I have made the {w}, it is {p}.", "The {w} is ready: {p}",
    ]).replace("{w}", what).replace("{p}", observation)


def _observe(ctx: _Ctx, tool: CatalogTool, source: str, args: dict) -> str:
    rng = ctx.rng
    if tool.output == "image":
        func = _FUNC.get(tool.name, (tool.family.replace("_", "-"), ""))[0] if tool.source == "real" else tool.family.replace("_", "-")
        return tool_output_path(rng, func, source or random_image_path(rng))
    if tool.name == "Get Photo Description":
        return ctx.captions.get(source, random_caption(rng)[0]).rstrip(".").lower()
    if tool.name == "Answer Question About The Image":
        return _vqa_answer(rng, args.get("q", ""))
    if not tool.observations:
        raise ValueError(f"text tool {tool.name!r} has no example observations")
    return rng.choice(tool.observations)


# People often leave the image out entirely ("where are the birds", "write a caption"): the request
# still concerns the last image. Only a reference that hangs on a preposition can go without breaking
# the sentence.
_ELIDABLE_REFS = (
    re.compile(r",?\s+(?:in|of|from|on|to|for|inside|within)\s+\{img\}"),  # "where is the cat in {img}"
    re.compile(r"\s*\((?:look at |about )?\{img\}\)"),                      # "{q}? ({img})"
    re.compile(r"\s+-\s+\{img\}$|^\{img\}\s+-\s+"),                        # "{q} - {img}", "{img} - {q}?"
)
ELIDE_RATE = 0.15
# A question about the picture is most often asked bare ("what is on the table?", "where are the
# birds"): the looking and finding tools leave the image out more often.
QUESTION_ELIDE_RATE = 0.6
_QUESTION_GROUPS = frozenset({"look", "find"})


def elide_image_reference(phrasing: str, rng: random.Random, rate: float | None = None) -> str:
    """``phrasing`` without its "in {img}" part, ``rate`` (default ``ELIDE_RATE``) of the time when it
    has exactly one."""
    rate = ELIDE_RATE if rate is None else rate
    if phrasing.count("{img}") != 1:
        return phrasing
    pattern = next((p for p in _ELIDABLE_REFS if p.search(phrasing)), None)
    if pattern is None or rng.random() >= rate:
        return phrasing
    return pattern.sub("", phrasing, count=1)


def _fill(ctx: _Ctx, tool: CatalogTool, phrasing: str, target: str, second: str = "") -> tuple[str, str]:
    """The request text and the Action Input for ``tool`` on image ``target``."""
    rng = ctx.rng
    noun = ctx.nouns.get(target, "dog")
    values: dict[str, str] = {}
    slots = list(tool.args)
    if tool.source == "real":
        for s in slots[1:] if slots[0] == "img" else slots:
            if s == "style":
                values["style"] = random_style(rng)
            elif s == "q":
                values["q"] = random_question(rng, noun)
            elif s == "desc":
                values["desc"] = random_description(rng)
            elif s == "obj":
                values["obj"] = noun if rng.random() < 0.5 else slot_value("obj", rng)
            elif s == "obj2":
                values["obj2"] = slot_value("obj", rng)
                while values["obj2"] == values.get("obj"):
                    values["obj2"] = slot_value("obj", rng)
        ordered = [values[s] for s in slots if s != "img"]
    else:
        extra = [s for s in slots[1:]] if slots[0] == "img" else list(slots)
        ordered = []
        for i, s in enumerate(extra):
            if s == "img":
                continue
            v = (noun if (s == "obj" and rng.random() < 0.4) else slot_value(s, rng))
            while v in ordered:  # "the cat and the cat": two slots of one kind get different values
                v = slot_value(s, rng)
            values["xy"[len(ordered)]] = v
            ordered.append(v)
    if ctx.split == "train" and target and target == ctx.images[-1] and "{img2}" not in phrasing:
        rate = QUESTION_ELIDE_RATE if tool.source == "real" and tool.group in _QUESTION_GROUPS else None
        phrasing = elide_image_reference(phrasing, rng, rate)
    text = add_typos(wrap_request(phrasing, rng, ctx.split), rng, rate=rng.choice([0.0, 0.0, 0.04, 0.1])).strip()
    ref = image_reference(rng, target, ctx.split, explicit=0.45 if target == ctx.images[-1] else 1.0) if target else ""
    ref2 = second
    for key, val in values.items():
        text = text.replace("{" + key + "}", val)
    text = text.replace("{img2}", ref2).replace("{img}", ref)
    args = ([target] if slots[0] == "img" else []) + ([second] if "img" in slots[1:] else []) + ordered
    return text, ", ".join(args)


def _prior_exchange(ctx: _Ctx) -> None:
    """An earlier turn of the conversation: a tool result mentioned by the AI, or small talk."""
    rng = ctx.rng
    if rng.random() < 0.25 or not ctx.images:
        ex = rng.choice(load_no_tool_examples()["train"])
        ctx.history.append(react.render_history([("Human", ex.request), ("AI", ex.answer)]))
        return
    tool = rng.choice([t for t in ctx.catalog if t.source == "real" and t.args[0] == "img" and not t.cond] or ctx.catalog)
    source = ctx.images[-1]
    request, args = _fill(ctx, tool, rng.choice(tool.train), source)
    obs = _observe(ctx, tool, source, {})
    ctx.history.append(react.render_history([("Human", request), ("AI", _final_answer(ctx, tool, obs))]))
    if tool.output == "image":
        ctx.images.append(obs)
        ctx.captions[obs], ctx.nouns[obs] = ctx.captions.get(source, ""), ctx.nouns.get(source, "dog")


def _compatible(a: CatalogTool, b: CatalogTool) -> bool:
    if a.family == b.family or a.name == b.name:
        return False
    for x, y in ((a, b), (b, a)):
        if y.group in _CONFLICTS_BY_GROUP.get(x.name, ()) and y.source == "synthetic":
            return False
        if y.family in _CONFLICTS_BY_FAMILY.get(x.name, ()):
            return False
    return True


def _pick_tools(ctx: _Ctx, targets: Sequence[CatalogTool]) -> list[CatalogTool]:
    rng = ctx.rng
    n = max(len(targets), rng.choice([2, 3, 3, 4, 4, 5]))
    chosen = list(targets)
    neigh = set().union(*(_NEIGHBOURS.get(t.group, {t.group}) for t in targets))
    real_share = 0.75 if targets[0].source == "real" else 0.5
    tries = 0
    while len(chosen) < n and tries < 200:
        tries += 1
        if rng.random() < 0.55:
            pool = [t for t in ctx.catalog if t.group in neigh]
        elif rng.random() < real_share:
            pool = [t for t in ctx.catalog if t.source == "real"]
        else:
            pool = [t for t in ctx.catalog if t.source == "synthetic"]
        if not pool:
            continue
        cand = rng.choice(pool)
        if all(_compatible(cand, c) for c in chosen):
            chosen.append(cand)
    rng.shuffle(chosen)
    return chosen


def _base_context(rng: random.Random, split: str, catalog: list[CatalogTool], n_images: int | None = None) -> _Ctx:
    ctx = _Ctx(rng, split, catalog, {t.name: t for t in catalog})
    if n_images is None:
        n_images = rng.choices([0, 1, 2, 3], weights=[0.02, 0.68, 0.22, 0.08])[0]
    for _ in range(n_images):
        _add_image(ctx)
        if rng.random() < 0.3:
            _prior_exchange(ctx)
    return ctx


def _single(ctx: _Ctx, tool: CatalogTool, kind: str) -> Episode:
    rng = ctx.rng
    second = ""
    if tool.args[0] == "img":
        if not ctx.images:
            _add_image(ctx)
        if "img" in tool.args[1:] and len(ctx.images) < 2:
            _add_image(ctx)
        if "img" in tool.args[1:]:
            target, second = ctx.images[-2], ctx.images[-1]
        elif len(ctx.images) > 1 and rng.random() < 0.2:
            target = rng.choice(ctx.images[:-1])  # named explicitly by _fill
        else:
            target = ctx.images[-1]
    else:
        target = ""
    phrasing = rng.choice(_pool(tool, ctx.split))
    request, args = _fill(ctx, tool, phrasing, target, second)
    parsed = dict(zip(tool.args, [a.strip() for a in args.split(",")]))
    if tool.name == "Answer Question About The Image":
        parsed["q"] = args.split(", ", 1)[1]
    obs = _observe(ctx, tool, target, parsed)
    answer = _final_answer(ctx, tool, obs)
    if ctx.split == "train" and rng.random() < TOOL_ERROR_RATE:
        obs = _tool_error(rng, tool, target, parsed)
        answer = f"I could not do that. {obs}"
    targets = [tool]
    if ctx.split == "train" and rng.random() < TOOL_WORD_TRAP_RATE:
        # Tools that share a word with the request but do another job ("highlight the cat with a
        # box" beside Highlight Given Object): the description decides, not the shared word.
        targets += [t for t in _word_traps(ctx, request, k=3) if _compatible(t, tool)][:2]
    tools = _pick_tools(ctx, targets)
    return Episode(tools, list(ctx.history), request, [(tool.name, args, obs)], answer, kind,
                   ctx.captions.get(target, ""), target)


# Tools fail (missing weights, unreadable files, objects a detector cannot look for); the model must
# say so instead of presenting the error as a result.
TOOL_ERROR_RATE = 0.03


def _tool_error(rng: random.Random, tool: CatalogTool, target: str, parsed: dict) -> str:
    errors = [
        f"Error: {tool.name} failed: RuntimeError: CUDA out of memory",
        f"Error: {tool.name}: its model weights are not installed; `efe tools` says how to get them",
        f"Error: {tool.name} timed out after 120 s",
    ]
    if target:
        errors.append(f"Error: {tool.name}: cannot read the image {target}: the file is not a valid image")
    obj = parsed.get("obj")
    if obj:
        errors.append(f"Error: {tool.name}: this detector cannot look for '{obj}'")
    return rng.choice(errors)


_CHAIN_PHRASINGS = {
    "train": ["generate {desc} from the {c} of {img}", "use the {c} of {img} to make {desc}",
              "first get the {c} of {img}, then generate {desc} from it", "make {desc} based on the {c} of {img}",
              "turn {img} into {desc}, keeping its {c}", "take the {c} of {img} and create {desc}",
              "can you extract the {c} from {img} and then generate {desc}",
              # Session 8: a chain that stopped after its first step on a hand-written request.
              "give me {desc} with the {c} of {img}", "i need {desc}, copy the {c} from {img}",
              "{desc}, but with the {c} taken from {img}", "extract the {c} of {img} first, then draw {desc} on top of it",
              "keep the {c} of {img} and change it into {desc}", "match the {c} of {img} and render {desc}",
              "start from the {c} of {img} and generate {desc}", "re-imagine {img} as {desc} with its {c} kept",
              "build {desc} on the {c} of {img}", "i'd like {desc} that mirrors the {c} of {img}",
              "get the {c} from {img} and then make {desc} with it", "{img} has a nice {c}, make {desc} out of it",
              "could you make {desc} in the {c} of {img}", "grab the {c} of {img}, then turn it into {desc}"],
    "val": ["I want {desc}, following the {c} in {img}", "create {desc} that has the same {c} as {img}",
            "using {img}'s {c}, paint {desc}"],
}
_COND_WORDS = {
    "Edge Detection On Image": ["canny edges", "edges", "edge map"], "Line Detection On Image": ["straight lines", "line segments"],
    "Hed Detection On Image": ["soft hed boundary", "hed boundaries"], "Sketch Detection On Image": ["sketch", "scribble"],
    "Pose Detection On Image": ["human pose", "pose"], "Segment the Image": ["segmentation", "segments"],
    "Predict Depth On Image": ["depth map", "depth"], "Predict Normal Map On Image": ["normal map", "surface normals"],
}


def _chain(ctx: _Ctx, gen: CatalogTool) -> Episode:
    rng = ctx.rng
    cond = ctx.by_name[gen.cond]
    if not ctx.images:
        _add_image(ctx)
    source = ctx.images[-1]
    desc = random_description(rng)
    phr = wrap_request(rng.choice(_CHAIN_PHRASINGS[ctx.split]), rng, ctx.split)
    request = add_typos(phr, rng, rate=rng.choice([0.0, 0.05])).strip()
    request = request.replace("{c}", rng.choice(_COND_WORDS[cond.name])).replace("{desc}", desc).replace(
        "{img}", image_reference(rng, source, ctx.split))
    mid = _observe(ctx, cond, source, {})
    out = _observe(ctx, gen, mid, {})
    tools = _pick_tools(ctx, [cond, gen])
    return Episode(tools, list(ctx.history), request, [(cond.name, source, mid), (gen.name, f"{mid}, {desc}", out)],
                   _final_answer(ctx, gen, out), "chain", ctx.captions.get(source, ""), source)


def _direct_cond(ctx: _Ctx, gen: CatalogTool) -> Episode:
    """The condition image is already in the conversation: one step, on that file."""
    rng = ctx.rng
    cond = ctx.by_name[gen.cond]
    if not ctx.images:
        _add_image(ctx)
    source = ctx.images[-1]
    req, _ = _fill(ctx, cond, rng.choice(cond.train), source)
    mid = _observe(ctx, cond, source, {})
    ctx.history.append(react.render_history([("Human", req), ("AI", _final_answer(ctx, cond, mid))]))
    ctx.images.append(mid)
    ctx.captions[mid], ctx.nouns[mid] = ctx.captions.get(source, ""), ctx.nouns.get(source, "dog")
    request, args = _fill(ctx, gen, rng.choice(_pool(gen, ctx.split)), mid)
    out = _observe(ctx, gen, mid, {})
    tools = _pick_tools(ctx, [gen])
    return Episode(tools, list(ctx.history), request, [(gen.name, args, out)], _final_answer(ctx, gen, out),
                   "direct_cond", ctx.captions.get(source, ""), mid)


_FILENAME_QUESTIONS = {
    "train": ["what was the name of the file i uploaded?", "which file did i send you?", "remind me the image name",
              "what's the file name of the last image?", "where is my image saved?", "what's the path to the photo?",
              "give me the file path of the last picture", "what did you call the result file?",
              "what is the filename of my photo", "where did the edited picture end up?",
              "tell me the name of the latest file", "i forgot what my upload is called",
              "which path should i use for that image?", "file name of the result please",
              "where can i find the image you made?", "what's the location of the pic on disk?"],
    "val": ["can you tell me the path of my picture?"],
}
# How often a no-tool request about files comes when there is an image: asking where a picture is
# needs no tool, yet "path"/"picture" pull a small model toward one.
FILENAME_QUESTION_RATE = 0.15
# How often a no-tool request is listed beside tools that share a word with it ("positive or
# negative?" beside Negative Image Filter): a shared word is not a reason to call a tool.
WORD_TRAP_RATE = 0.5
# The same for tool calls: how often a single call's listing gets such tools beside the right one.
TOOL_WORD_TRAP_RATE = 0.3
_TRAP_STOPWORDS = frozenset({
    "image", "images", "photo", "photos", "picture", "pictures", "with", "from", "this", "that", "into", "make",
    "given", "what", "when", "your", "tool", "file", "text", "there", "have", "about", "them", "they", "like",
    "want", "some", "more", "than", "then", "each", "other", "these", "those", "which", "where", "please"})


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4 and w not in _TRAP_STOPWORDS}


@lru_cache(maxsize=None)
def _tool_words(name: str, description: str) -> frozenset[str]:
    # Asked for every catalog tool on every trap listing: worth reading each description once.
    return frozenset(_content_words(name + " " + description.split(". The input")[0]))


def _word_traps(ctx: _Ctx, request: str, k: int = 2) -> list[CatalogTool]:
    """Up to ``k`` catalog tools whose name or gist shares a content word with ``request``."""
    words = _content_words(request)
    hits = [t for t in ctx.catalog if words & _tool_words(t.name, t.description)]
    ctx.rng.shuffle(hits)
    chosen: list[CatalogTool] = []
    for t in hits:
        if len(chosen) == k:
            break
        if all(_compatible(t, c) for c in chosen):
            chosen.append(t)
    return chosen


def _no_tool(ctx: _Ctx) -> Episode:
    rng = ctx.rng
    tools = _pick_tools(ctx, [rng.choice(ctx.catalog)])
    if ctx.images and rng.random() < FILENAME_QUESTION_RATE:
        q = rng.choice(_FILENAME_QUESTIONS[ctx.split])
        return Episode(_trap_listing(ctx, q, tools), list(ctx.history), add_typos(q, rng), [],
                       f"The last image is {ctx.images[-1]}.", "no_tool_file")
    if not ctx.images and rng.random() < 0.05:
        # An image task with nothing to work on: ask for the image instead of inventing a file name.
        t = rng.choice([t for t in ctx.catalog if t.source == "real" and t.args[0] == "img"])
        phrasing = rng.choice(t.train).replace("{img}", rng.choice(["this image", "my photo", "the picture"]))
        for k in ("obj", "obj2"):
            phrasing = phrasing.replace("{" + k + "}", slot_value("obj", rng))
        phrasing = phrasing.replace("{q}", random_question(rng, "dog")).replace("{style}", random_style(rng)).replace(
            "{desc}", random_description(rng))
        return Episode(tools, list(ctx.history), phrasing, [], "Please upload an image first, then I can do that.", "no_tool_noimage")
    pool = load_no_tool_examples()[ctx.split]
    kind = "text" if rng.random() < 0.65 else "chat"
    ex = rng.choice([e for e in pool if e.kind == kind] or list(pool))
    request = add_typos(ex.request, rng, rate=rng.choice([0.0, 0.05]))
    return Episode(_trap_listing(ctx, ex.request, tools), list(ctx.history), request, [], ex.answer, f"no_tool_{ex.kind}")


def _trap_listing(ctx: _Ctx, request: str, tools: list[CatalogTool]) -> list[CatalogTool]:
    """``tools``, or (``WORD_TRAP_RATE`` of the time, in training) a listing led by tools that share
    a word with ``request``."""
    if ctx.split != "train" or ctx.rng.random() >= WORD_TRAP_RATE:
        return tools
    traps = _word_traps(ctx, request)
    return _pick_tools(ctx, traps) if traps else tools


# A synthetic tool is sometimes listed under a fresh name for one episode, so that a name alone never
# tells which tool to use: the model has to match the request to the description (issue 7: tools
# never seen in training lost to familiar names). Real tools always keep their names.
_NAME_FILLERS = ("Image", "Photo", "Picture", "Pic", "Visual", "Smart", "Quick", "Auto", "Pro", "Easy")
_NAME_TAILS = ("Tool", "Helper", "Utility", "Studio", "Kit", "Assistant", "Engine", "Module", "Service", "App")
_CODENAMES = ("Kestrel", "Nimbus", "Quartz", "Juniper", "Falcon", "Orbit", "Maple", "Cobalt", "Lumen", "Vertex",
              "Saffron", "Tundra", "Pebble", "Zephyr", "Aurora", "Comet", "Indigo", "Onyx", "Willow", "Ember")


@lru_cache(maxsize=None)
def _real_names_lower() -> frozenset[str]:
    return frozenset(spec.name.lower() for spec in load_tool_specs())


def _fresh_name(rng: random.Random, tool: CatalogTool, taken: set[str]) -> str:
    words = [w for w in re.findall(r"[A-Za-z]+", tool.name) if w.lower() not in {"the", "to", "of", "on", "in", "or", "and", "a", "by", "from"}]
    for _ in range(20):
        shape = rng.random()
        if shape < 0.4 and len(words) >= 2:
            picked = rng.sample(words, k=min(len(words), rng.choice([1, 2])))
            name = " ".join([rng.choice(_NAME_FILLERS)] * (rng.random() < 0.5) + picked + [rng.choice(_NAME_TAILS)])
        elif shape < 0.75:
            name = f"{rng.choice(_CODENAMES)} {rng.choice(_NAME_TAILS)}"
        else:
            name = f"{rng.choice(_NAME_FILLERS)} {rng.choice(_NAME_TAILS)} {rng.randint(2, 99)}"
        if name.lower() not in taken and name.lower() not in _real_names_lower() and name not in heldout_names():
            return name
    return f"Tool {rng.randint(100, 999)}"


def _rename_tools(ep: Episode, rng: random.Random, prob: float, real_prob: float = 0.0) -> Episode:
    """Each listed synthetic tool keeps its name, or with ``prob`` gets a fresh one for this episode;
    a real tool likewise with ``real_prob``."""
    taken = {t.name.lower() for t in ep.tools}
    mapping: dict[str, str] = {}
    for t in ep.tools:
        p = prob if t.source == "synthetic" else real_prob
        # No draw at p == 0, so that the default data stays what it was before real renaming existed.
        if p > 0 and rng.random() < p:
            mapping[t.name] = _fresh_name(rng, t, taken | {m.lower() for m in mapping.values()})
    if not mapping:
        return ep
    ep.tools = [replace(t, name=mapping[t.name]) if t.name in mapping else t for t in ep.tools]
    ep.steps = [(mapping.get(name, name), args, obs) for name, args, obs in ep.steps]
    return ep


def generate_episodes(n: int, seed: int = 0, split: str = "train", catalog: list[CatalogTool] | None = None,
                      mix: dict[str, float] | None = None, target_families: Iterable[str] | None = None,
                      rename_prob: float | None = None, rename_real_prob: float = 0.0) -> list[Episode]:
    """``n`` episodes. ``split="val"`` draws every phrasing, wrapper and example from the val pools.

    ``target_families`` restricts which tools are called (others are still listed beside them).
    ``rename_prob``: chance that a listed synthetic tool gets a fresh name for the episode
    (default 0.3 for training, 0 for validation, whose tools keep the names a user would see).
    ``rename_real_prob``: the same for the real GPT4Tools tools (default 0: users see them under
    their own names; above 0, an experiment in making the model read descriptions, not names).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, not {split!r}")
    rng = random.Random(seed)
    catalog = catalog if catalog is not None else build_catalog(exclude_families=UNSEEN_SYNTHETIC_FAMILIES + UNSEEN_REAL_TOOLS)
    mix = mix or {"real": 0.37, "chain": 0.08, "direct_cond": 0.05, "synthetic": 0.29, "no_tool": 0.21}
    if rename_prob is None:
        rename_prob = 0.3 if split == "train" else 0.0
    targets = set(target_families) if target_families is not None else None
    callable_ = [t for t in catalog if targets is None or t.family in targets]
    real = [t for t in callable_ if t.source == "real" and not t.cond]
    synth = [t for t in callable_ if t.source == "synthetic"]
    gens = [t for t in callable_ if t.cond and t.cond in {c.name for c in catalog}]
    # Text-to-image needs no image; the rest get one. Weights keep each real tool well represented.
    episodes = []
    available = {"real": bool(real), "synthetic": bool(synth), "chain": bool(gens), "direct_cond": bool(gens), "no_tool": True}
    mix = {k: w for k, w in mix.items() if w > 0 and available.get(k, False)}
    if not mix:
        raise ValueError("no tool in the catalog can be called for this mix and target_families")
    kinds, weights = zip(*mix.items())
    while len(episodes) < n:
        kind = rng.choices(kinds, weights)[0]
        if kind == "no_tool":
            # Mostly with an image in the conversation: bare image questions are asked with a tool, so
            # thanks, small talk and text tasks must be seen beside an image too.
            ctx = _base_context(rng, split, catalog, n_images=rng.choices([0, 1, 2], [0.3, 0.5, 0.2])[0])
            episodes.append(_no_tool(ctx))
            continue
        ctx = _base_context(rng, split, catalog)
        if kind in ("chain", "direct_cond") and gens:
            gen = rng.choice(gens)
            episodes.append(_chain(ctx, gen) if kind == "chain" else _direct_cond(ctx, gen))
        elif kind == "synthetic" and synth:
            episodes.append(_single(ctx, rng.choice(synth), "synthetic"))
        elif kind == "real" and real:
            episodes.append(_single(ctx, rng.choice(real), "real"))
        else:
            continue
        if rename_prob > 0 or rename_real_prob > 0:
            _rename_tools(episodes[-1], rng, rename_prob, rename_real_prob)
    return episodes


def _render(ep: Episode, done: int, reference_style: bool = False) -> str:
    """The prompt after ``done`` steps. ``reference_style`` writes finished steps as the GPT4Tools
    references do (``Observation:\n<result>``, as the evaluation's rollout appends them) instead of
    the agent's scratchpad (``Observation: <result>``), so the model follows either."""
    if not reference_style or not done:
        return react.render_prompt([t.pair for t in ep.tools], "\n".join(ep.history), ep.request,
                                   react.render_scratchpad(ep.steps[:done]))
    base = react.render_prompt([t.pair for t in ep.tools], "\n".join(ep.history), ep.request, "")
    return base + "".join(f"{_tool_target(t, i)}\n{o}\n" for t, i, o in ep.steps[:done])


def _tool_target(tool: str, tool_input: str) -> str:
    return f"{react.THOUGHT_YES}\n{react.ACTION_PREFIX}{tool}\n{react.ACTION_INPUT_PREFIX}{tool_input}{TOOL_TARGET_SUFFIX}"


def episode_samples(ep: Episode, final_prob: float = 1.0, rng: random.Random | None = None) -> list[dict]:
    """One training sample per ReAct step (the final answer step kept with ``final_prob``)."""
    rng = rng or random.Random()
    out = []
    for k, (tool, tool_input, _) in enumerate(ep.steps):
        out.append({"instruction": _render(ep, k, rng.random() < 0.25), "input": "", "output": _tool_target(tool, tool_input),
                    "kind": ep.kind})
    if not ep.steps or rng.random() < final_prob:
        out.append({"instruction": _render(ep, len(ep.steps), rng.random() < 0.25), "input": "",
                    "output": react.render_final_step(ep.answer), "kind": ep.kind + ("_final" if ep.steps else "")})
    return out


def _reference(steps: Sequence[tuple[str, str, str]], answer: str) -> str:
    body = "".join(f"{react.THOUGHT_YES}\n{react.ACTION_PREFIX}{t}\n{react.ACTION_INPUT_PREFIX}{i}\nObservation:\n{o}\n"
                   for t, i, o in steps)
    return body + react.render_final_step(answer) + "\n"


def episode_eval_records(ep: Episode, start_id: int = 0) -> list[dict]:
    """Validation-flavour records (EVAL_FORMAT.md): the whole request, then each later step of a chain."""
    recs = []
    for done in range(0, max(1, len(ep.steps))):
        rest = ep.steps[done:]
        recs.append({
            "id": start_id + len(recs),
            "instruction": _render(ep, done),
            "input": "",
            "output": _reference(rest, ep.answer),
            "Action": [t for t, _, _ in rest],
            "Action Input": [[a.strip() for a in i.split(",")] for _, i, _ in rest],
            "user_input": ep.request,
            "caption": ep.caption,
            "filename": ep.filename,
            "finished_previously": done > 0,
            "kind": ep.kind,
            "tools": [t.name for t in ep.tools],
        })
    return recs


def generate_samples(n_episodes: int, seed: int = 0, split: str = "train", catalog: list[CatalogTool] | None = None,
                     final_prob: float = 0.6, mix: dict[str, float] | None = None,
                     rename_real_prob: float = 0.0) -> list[dict]:
    rng = random.Random(seed + 1)
    out: list[dict] = []
    for ep in generate_episodes(n_episodes, seed, split, catalog, mix, rename_real_prob=rename_real_prob):
        out.extend(episode_samples(ep, final_prob, rng))
    return out


def generate_eval_records(n_episodes: int, seed: int = 0, split: str = "val", catalog: list[CatalogTool] | None = None,
                          mix: dict[str, float] | None = None, target_families: Iterable[str] | None = None) -> list[dict]:
    recs: list[dict] = []
    # Evaluation records list tools under their own names, as a user would see them.
    for ep in generate_episodes(n_episodes, seed, split, catalog, mix, target_families, rename_prob=0.0):
        recs.extend(episode_eval_records(ep, start_id=len(recs)))
    return recs
