"""``efe tools``: every tool, its backends, and whether each can run on this machine."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

__all__ = ["add_arguments", "run", "render_table", "memory_estimates", "memory_placement", "check_tools"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    parser.add_argument("--device", default="cpu", help="device the tools would load on (default: %(default)s)")
    parser.add_argument(
        "--load",
        default=None,
        metavar="SPEC",
        help="only these tools, GPT4Tools style: Image2Canny_cpu,Text2Box_cuda:0 (names or load names; "
        "a name without _device goes on --device); with --memory, the total each device needs",
    )
    parser.add_argument("--available", action="store_true", help="only the tools that can run here")
    parser.add_argument(
        "--prefer",
        default=None,
        help="backend kinds in order of preference, e.g. embedded,classical,reference "
        "(default: reference when its weights are present, then embedded, then classical)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run every tool that can run here once on a test picture and report whether it worked",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="add each tool's GPU memory estimate (from the reference backends, before loading anything)",
    )


def check_tools(infos, device: str) -> dict[str, dict]:
    """Run each runnable tool once on a test picture: ``{name: {ok, seconds, output}}``.

    Static availability says the weights are there; this says the tool really works here.
    Generation tools get a short prompt and seed 0; everything writes to a temporary workspace.
    """
    import tempfile
    import time

    from tqdm import tqdm

    from efe_langchain.tools.registry import load_tools
    from efe_langchain.workspace import Workspace

    ws = Workspace(tempfile.mkdtemp(prefix="efe-tools-check-"))
    picture = ws.add_image(_test_picture())
    values = {"image_path": picture, "text": "person", "question": "what is in the image?",
              "object_to_replace": "person", "replace_with": "a robot"}  # fmt: skip
    results = {}
    runnable = [i for i in infos if i.available]
    for info in tqdm(runnable, desc="checking tools", unit="tool", file=sys.stderr):
        (tool,) = load_tools([f"{info.name}_{device}"], workspace=ws)
        fields = tool.args_schema.model_fields
        args = {f: values[f] for f, field in fields.items() if field.is_required()}
        if "seed" in fields:
            args["seed"] = 0  # a check that can be rerun gives the same picture
        start = time.perf_counter()
        msg = tool.invoke({"type": "tool_call", "id": "check", "name": tool.name, "args": args})
        results[info.name] = {
            "ok": msg.status == "success",
            "seconds": round(time.perf_counter() - start, 3),
            "output": str(msg.content),
        }
        if isinstance(msg.artifact, dict) and "seed" in msg.artifact:
            results[info.name]["seed"] = msg.artifact["seed"]
    return results


def _test_picture():
    """scikit-image's astronaut (a person, a face, text on a badge), or a drawn scene without it."""
    from PIL import Image, ImageDraw

    try:
        import skimage.data

        return Image.fromarray(skimage.data.astronaut())
    except Exception:
        img = Image.new("RGB", (512, 512), (90, 140, 200))
        draw = ImageDraw.Draw(img)
        draw.ellipse((200, 80, 310, 200), fill=(230, 190, 160))
        draw.rectangle((180, 200, 330, 480), fill=(200, 60, 40))
        draw.text((40, 40), "EFE TOOLS CHECK", fill=(255, 255, 255))
        return img


def _reference_function(name: str):
    """A function of ``efe_langchain.backends.reference`` (which owns the numbers: it knows
    its checkpoints), or None when that package or function is not there."""
    try:
        module = importlib.import_module("efe_langchain.backends.reference")
    except ImportError:
        return None
    return getattr(module, name, None)


def memory_estimates(infos, device: str | dict[str, str]) -> dict | None:
    """Each row's estimate from ``estimate_memory`` on ``device`` (or on its own device, given
    ``{name: device}``), keyed by the rows' names; None when the reference backends are absent."""
    estimate = _reference_function("estimate_memory")
    if estimate is None:
        return None
    devices = device if isinstance(device, dict) else {i.name: device for i in infos}
    out: dict = {}
    for dev in dict.fromkeys(devices.values()):
        result = estimate([i for i in infos if devices.get(i.name) == dev], device=dev)
        out.update(result or {})
    return out


def memory_placement(placed, memory: dict | None) -> dict[str, int] | None:
    """Bytes per device for ``[(tool class, device)]``, each shared model counted once
    (``estimate_placement``); only tools with a reference estimate are placed, since the others
    run on the CPU outside any GPU budget. None when the reference backends are absent."""
    from efe_langchain.tools.base import snake_name

    estimate = _reference_function("estimate_placement")
    if estimate is None or memory is None:
        return None
    placement = {}
    for cls, device in placed:
        name = snake_name(cls.spec().name)
        if memory.get(name) is not None:
            placement[cls.spec_load_name()] = device
    return dict(estimate(placement)) if placement else {}


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(value) -> str:
    if isinstance(value, (int, float)):
        return f"{value / 2**30:.1f} GiB"
    return str(value)


def _mark(ok: bool) -> str:
    return "yes" if ok else "no "


def render_table(
    infos,
    memory: dict | None = None,
    device: str | dict[str, str] = "cuda",
    checks: dict | None = None,
    totals: dict[str, int] | None = None,
) -> str:
    """The listing; ``device`` is one device for every row or ``{name: device}``; ``totals`` the
    memory each device needs for the rows together (shared models once)."""
    devices = device if isinstance(device, dict) else {}
    lines = []
    name_w = max(len(i.gpt4tools_name) for i in infos) if infos else 10
    load_w = max(len(i.load_name) for i in infos) if infos else 10
    lines.append(f"{'runs':4s}  {'tool (GPT4Tools name)':{name_w}s}  {'load name':{load_w}s}  snake_case name")
    for info in infos:
        mem = ""
        if memory is not None:
            value = memory.get(info.name, memory.get(info.gpt4tools_name))
            on = devices.get(info.name, device)
            mem = f"  [reference weights: {_size(value)} on {on}]" if value is not None else ""
        lines.append(f"{_mark(info.available):4s}  {info.gpt4tools_name:{name_w}s}  {info.load_name:{load_w}s}  {info.name}{mem}")
        check = (checks or {}).get(info.name)
        if check is not None:
            verdict = "ran fine" if check["ok"] else "FAILED"
            lines.append(f"        check: {verdict} in {check['seconds']:.2f} s -> {_short(check['output'])}")
        for b in info.backends:
            chosen = info.chosen.get(b.capability) == b.name
            flag = "*" if chosen else ("+" if b.available else "-")
            detail = b.label if b.available else b.reason
            lines.append(f"        {flag} {b.capability:15s} {b.name:32s} {b.kind:10s} {detail}")
        if not info.available and not info.backends:
            lines.append(f"        - {info.reason}")
    n_ok = sum(i.available for i in infos)
    lines.append("")
    lines.append(f"{n_ok} of {len(infos)} tools can run here.  * chosen backend, + can run, - cannot run (why)")
    if totals is not None:
        lines.append("")
        if not totals:
            lines.append("memory per device: none of these tools runs on a reference model")
        for dev, value in totals.items():
            names = [i.load_name for i in infos if devices.get(i.name) == dev and (memory or {}).get(i.name) is not None]
            lines.append(f"memory on {dev}: {_size(value)} for {', '.join(names)} (shared models counted once)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from efe_langchain.tools.base import snake_name
    from efe_langchain.tools.registry import list_tools, parse_spec

    prefer = [p.strip() for p in args.prefer.split(",") if p.strip()] if args.prefer else None
    infos = list_tools(device=args.device, prefer=prefer)
    placed = None
    if args.load:
        placed = parse_spec(args.load, default_device=args.device)
        wanted = {cls.spec().name for cls, _ in placed}
        infos = [i for i in infos if i.gpt4tools_name in wanted]
    if args.available:
        infos = [i for i in infos if i.available]
    devices: str | dict[str, str] = args.device
    if placed is not None:
        kept = {i.name for i in infos}
        placed = [(cls, dev) for cls, dev in placed if snake_name(cls.spec().name) in kept]
        devices = {snake_name(cls.spec().name): dev for cls, dev in placed}
    memory = totals = None
    if args.memory:
        memory = memory_estimates(infos, devices)
        if placed is not None:
            totals = memory_placement(placed, memory)
        if memory is None:
            print(
                "note: GPU memory estimates come with the reference backends "
                "(efe_langchain.backends.reference.estimate_memory), which are not installed here",
                file=sys.stderr,
            )
    checks = check_tools(infos, args.device) if args.check else None
    if args.json:
        rows = []
        for info in infos:
            row = info.to_dict()
            if memory is not None:
                row["memory"] = memory.get(info.name, memory.get(info.gpt4tools_name))
            if placed is not None:
                row["device"] = devices[info.name]
            if totals is not None:
                # The device's total for the whole --load, repeated per row: the output stays a list.
                row["device_memory_total"] = totals.get(row["device"])
            if checks is not None:
                row["check"] = checks.get(info.name)
            rows.append(row)
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(render_table(infos, memory, devices, checks, totals))
    # A check that failed is worth a non-zero exit: scripts and CI can rely on it.
    return 1 if checks and not all(c["ok"] for c in checks.values()) else 0
