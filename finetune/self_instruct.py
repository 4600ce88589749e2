"""Self-instruct as in the GPT4Tools paper: an LLM writes the tool-use instructions.

An LLM behind any OpenAI-compatible endpoint (OpenAI, vLLM, ``efe serve``) gets an image caption
and 2 to 5 tool descriptions and writes requests a user could make, each with the tool calls that
answer it (or none). We parse what it wrote, check every call against the tool list (known name,
argument count, the image path first), drop duplicates, and turn the survivors into single-tool,
chained, multi-turn and no-tool samples rendered by ``efe_langchain.react``.
"""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from efe_langchain import react

from .offline_data import UNSEEN_REAL_TOOLS, UNSEEN_SYNTHETIC_FAMILIES, CatalogTool, Episode, build_catalog, episode_samples
from .phrasings import random_image_path, tool_output_path

__all__ = ["build_request_prompt", "parse_llm_items", "check_item", "generate_self_instruct"]

IMAGE_TOKEN = "IMAGE"

_PROMPT = """You write training data for an assistant that uses tools on images.
An image is described as: "{caption}"
The assistant has these tools:
{tools}

Write {n} different requests a person could make about this image (or in general), in varied, natural
wording (short and long, questions, indirect requests, some with typos). For each, give the tool calls
that answer it, in order. A later call may use the previous call's output image: write OUTPUT for it.
Write {image} for the image's file name. Give exactly as many comma-separated arguments as the tool's
description asks for, and keep text arguments short. About one request in five should need no tool
(a text task such as rewriting, translating or explaining); write "Tool: none" and the answer.

Format, one block per request, blocks separated by a blank line:
Request: <what the person writes>
Tool: <tool name>
Arguments: <comma-separated arguments>
(more Tool/Arguments pairs for a chain)
Answer: <what the assistant finally says>
"""


def build_request_prompt(caption: str, tools: Sequence[CatalogTool], n: int) -> str:
    lines = "\n".join(f"> {t.name}: {t.description}" for t in tools)
    return _PROMPT.format(caption=caption, tools=lines, n=n, image=IMAGE_TOKEN)


def parse_llm_items(text: str) -> list[dict]:
    """``[{"request", "calls": [(tool, args)], "answer"}]`` from the LLM's blocks; junk is skipped."""
    items = []
    for block in re.split(r"\n\s*\n", text.strip()):
        req = re.search(r"^\s*(?:\d+[.)]\s*)?Request:\s*(.+)$", block, re.M | re.I)
        if not req:
            continue
        calls = []
        for m in re.finditer(r"^\s*Tool:\s*(.+?)\s*$(?:\n\s*Arguments?:\s*(.*?)\s*$)?", block, re.M | re.I):
            name = m.group(1).strip().strip("\"'`")
            if name.lower() in ("none", "no tool", "n/a"):
                calls = []
                break
            calls.append((name, (m.group(2) or "").strip()))
        ans = re.search(r"^\s*Answer:\s*(.+)$", block, re.M | re.I | re.S)
        items.append({"request": req.group(1).strip().strip('"'), "calls": calls,
                      "answer": ans.group(1).strip() if ans else ""})
    return items


def check_item(item: dict, tools: Sequence[CatalogTool]) -> str | None:
    """Why the item is unusable, or None when every call fits the listed tools."""
    by_name = {t.name: t for t in tools}
    if not item["request"] or len(item["request"]) > 400:
        return "request empty or too long"
    if not item["calls"] and not item["answer"]:
        return "no call and no answer"
    for i, (name, args) in enumerate(item["calls"]):
        tool = by_name.get(name) or by_name.get(react.match_tool_name(name, list(by_name)) or "")
        if tool is None:
            return f"unknown tool {name!r}"
        parts = [p.strip() for p in args.split(",")] if args else []
        if len(parts) != len(tool.args):
            return f"{tool.name} takes {len(tool.args)} argument(s), got {len(parts)}"
        if tool.args[0] == "img" and parts[0] not in (IMAGE_TOKEN, "OUTPUT"):
            return f"{tool.name}: first argument must be {IMAGE_TOKEN} or OUTPUT"
        if parts and parts[0] == "OUTPUT" and i == 0:
            return "OUTPUT used before any tool ran"
        if any(len(p.split()) > 20 for p in parts):
            return "text argument too long"
    return None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _episodes(caption: str, tools: list[CatalogTool], items: list[dict], rng: random.Random) -> list[Episode]:
    by_name = {t.name: t for t in tools}
    out = []
    for item in items:
        path = random_image_path(rng)
        history = [react.render_image_turn(path, caption)]
        if out and rng.random() < 0.3:
            # Multi-turn: an earlier exchange of the same conversation stays in the history.
            prev = out[-1]
            history = prev.history + [react.render_history([("Human", prev.request), ("AI", prev.answer)])]
            path = re.findall(r"named (\S+)\. Description", history[0])[0]
        steps, current = [], path
        for name, args in item["calls"]:
            tool = by_name.get(name) or by_name[react.match_tool_name(name, list(by_name))]
            parts = [p.strip() for p in args.split(",")] if args else []
            parts = [current if p in (IMAGE_TOKEN, "OUTPUT") else p for p in parts]
            obs = tool_output_path(rng, tool.family.split()[0].lower(), current) if tool.output == "image" else item["answer"] or "done"
            steps.append((tool.name, ", ".join(parts), obs))
            if tool.output == "image":
                current = obs
        answer = item["answer"].replace(IMAGE_TOKEN, path).replace("OUTPUT", current) or current
        request = item["request"].replace(IMAGE_TOKEN, path)
        kind = "self_instruct_chain" if len(steps) > 1 else ("self_instruct" if steps else "self_instruct_no_tool")
        out.append(Episode(tools, history, request, steps, answer, kind, caption, path))
    return out


def generate_self_instruct(captions: Sequence[str], *, model: str, base_url: str | None = None, api_key: str | None = None,
                           per_caption: int = 3, concurrency: int = 4, seed: int = 0, client=None,
                           include_synthetic: bool = True) -> tuple[list[dict], dict]:
    """Samples and ``{"asked", "parsed", "kept", "rejected": {...reason: n}, "duplicates"}``."""
    import os

    if client is None:
        from openai import OpenAI

        client = OpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                        api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed")
    rng = random.Random(seed)
    catalog = [t for t in build_catalog(exclude_families=UNSEEN_SYNTHETIC_FAMILIES + UNSEEN_REAL_TOOLS)
               if include_synthetic or t.source == "real"]
    jobs = []
    for caption in captions:
        tools = rng.sample(catalog, rng.randint(2, 5))
        jobs.append((caption, tools, build_request_prompt(caption, tools, per_caption)))

    def ask(job):
        _, _, prompt = job
        resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                              temperature=0.9, max_tokens=900)
        return resp.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        texts = list(pool.map(ask, jobs))
    stats = {"asked": len(jobs), "parsed": 0, "kept": 0, "duplicates": 0, "rejected": {}}
    seen: set[str] = set()
    samples: list[dict] = []
    for (caption, tools, _), text in zip(jobs, texts):
        items = parse_llm_items(text)
        stats["parsed"] += len(items)
        good = []
        for item in items:
            why = check_item(item, tools)
            if why:
                key = why.split(" ")[0] if why.startswith(("unknown", "request", "no", "text", "OUTPUT")) else "arguments"
                stats["rejected"][key] = stats["rejected"].get(key, 0) + 1
                continue
            key = _norm(item["request"])
            if key in seen:
                stats["duplicates"] += 1
                continue
            seen.add(key)
            good.append(item)
        stats["kept"] += len(good)
        for ep in _episodes(caption, tools, good, rng):
            samples.extend(episode_samples(ep, 0.6, rng))
    return samples, stats
