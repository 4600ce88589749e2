"""The splits we keep for ourselves, in the validation flavour of EVAL_FORMAT.md.

- ``val_generated.json``: the generator's seen tools, asked only with the val phrasing pools;
- ``val_handwritten.json``: requests written by hand (``data/handwritten_requests.txt``);
- ``test_unseen.json``: tools held out of training as whole families (every alias).
"""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path

from efe_langchain import react

from .offline_data import (
    UNSEEN_REAL_TOOLS,
    UNSEEN_SYNTHETIC_FAMILIES,
    Episode,
    _pick_tools,
    _Ctx,
    build_catalog,
    episode_eval_records,
    generate_eval_records,
)
from .phrasings import random_caption, random_image_path, tool_output_path

__all__ = ["seen_catalog", "split_catalog", "handwritten_records", "unseen_records", "write_splits", "load_handwritten"]


def _split_families() -> set[str]:
    text = resources.files("efe_langchain.finetune").joinpath("data", "split_families.txt").read_text(encoding="utf-8")
    return {l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")}


def split_catalog():
    """Real tools and the synthetic families frozen in ``data/split_families.txt``: the splits list
    only these, so families added later for training do not change the committed splits."""
    frozen = _split_families()
    return [t for t in build_catalog() if t.source == "real" or t.family in frozen]


def seen_catalog():
    unseen = set(UNSEEN_SYNTHETIC_FAMILIES + UNSEEN_REAL_TOOLS)
    return [t for t in split_catalog() if t.family not in unseen]


def load_handwritten() -> list[tuple[list[str], str, list[str]]]:
    """``(tools, request, text args per step)`` for each hand-written line."""
    text = resources.files("efe_langchain.finetune").joinpath("data", "handwritten_requests.txt").read_text(encoding="utf-8")
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("||")]
        if len(parts) != 3:
            raise ValueError(f"handwritten_requests.txt line {n}: expected 'TOOL || request || args'")
        tools = [] if parts[0] == "-" else [t.strip() for t in parts[0].split(">")]
        args = [a.strip() for a in parts[2].split(";")] if tools else []
        out.append((tools, parts[1], args + [""] * (len(tools) - len(args))))
    return out


def handwritten_records(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    catalog = seen_catalog()
    by_name = {t.name: t for t in catalog}
    recs: list[dict] = []
    for tools, request, args in load_handwritten():
        ctx = _Ctx(rng, "val", catalog, by_name)
        for _ in range(rng.choice([1, 1, 1, 2])):
            path = random_image_path(rng, "val")
            caption, noun = random_caption(rng)
            ctx.images.append(path)
            ctx.captions[path] = caption
            ctx.history.append(react.render_image_turn(path, caption))
        target = ctx.images[-1]
        if "{img}" in request and len(ctx.images) > 1 and rng.random() < 0.5:
            target = ctx.images[0]
        text = request.replace("{img}", target)
        missing = [t for t in tools if t not in by_name]
        if missing:
            raise ValueError(f"handwritten request {request!r} names tools not in the seen catalog: {missing}")
        targets = [by_name[t] for t in tools] or [rng.choice([t for t in catalog if t.source == "real"])]
        listed = _pick_tools(ctx, targets)
        steps, source = [], target
        for tool_name, arg in zip(tools, args):
            tool = by_name[tool_name]
            if tool.args[0] == "img":
                tool_input = ", ".join([source] + ([arg] if arg else []))
            else:
                tool_input = arg
            obs = (tool_output_path(rng, tool.family.split()[0].lower(), source) if tool.output == "image"
                   else "[output_from_tool]")
            steps.append((tool_name, tool_input, obs))
            if tool.output == "image":
                source = obs
        answer = steps[-1][2] if steps else "[response]"
        ep = Episode(listed, ctx.history, text, steps, answer, "handwritten", ctx.captions.get(target, ""), target)
        recs.extend(episode_eval_records(ep, start_id=len(recs)))
    return recs


def unseen_records(n_episodes: int = 300, seed: int = 11) -> list[dict]:
    """Requests for the held-out tools, listed among seen ones, phrased from both pools."""
    catalog = split_catalog()
    targets = set(UNSEEN_SYNTHETIC_FAMILIES) | set(UNSEEN_REAL_TOOLS)
    mix = {"synthetic": 0.7, "chain": 0.15, "direct_cond": 0.15}
    half = n_episodes // 2
    recs = generate_eval_records(half, seed, "train", catalog, mix, target_families=targets)
    recs += generate_eval_records(n_episodes - half, seed + 1, "val", catalog, mix, target_families=targets)
    for i, r in enumerate(recs):
        r["id"] = i
    return recs


def write_splits(out_dir: str | Path, n_generated: int = 400, n_unseen: int = 300, seed: int = 3) -> dict[str, int]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "val_generated.json": generate_eval_records(n_generated, seed, "val", seen_catalog()),
        "val_handwritten.json": handwritten_records(),
        "test_unseen.json": unseen_records(n_unseen),
    }
    for name, recs in files.items():
        (out_dir / name).write_text(json.dumps(recs, indent=1, ensure_ascii=False), encoding="utf-8")
    return {k: len(v) for k, v in files.items()}
