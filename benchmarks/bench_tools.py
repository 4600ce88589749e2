"""Latency and peak memory of every embedded and classical tool on a 512x512 image, here.

Each tool runs in its own fresh process, so its peak memory is its own: the process's peak RSS
minus the RSS it had after importing everything and before loading the tool's backends.
``cold`` is the first call (weights load + run), ``warm`` the median of the next ``--repeat``
calls. One table; ratios are to Canny from the same run.

    .venv/bin/python benchmarks/bench_tools.py [--repeat 5] [--only Image2Canny,FaceFinding] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _args_for(tool, image: str) -> dict:
    values = {"image_path": image, "text": "face", "question": "what is in the image?",
              "object_to_replace": "face", "replace_with": "a cat's face"}  # fmt: skip
    fields = tool.args_schema.model_fields
    return {f: values[f] for f, info in fields.items() if info.is_required()}


def _measure(load_name: str, repeat: int, queue) -> None:
    import skimage.data as data
    from PIL import Image

    from efe_langchain.tools.registry import load_tools
    from efe_langchain.workspace import Workspace

    ws = Workspace(tempfile.mkdtemp(prefix="efe-bench-"))
    image = ws.add_image(Image.fromarray(data.astronaut()))  # 512x512 RGB
    (tool,) = load_tools([load_name], workspace=ws)
    args = _args_for(tool, image)
    base = _rss_bytes()
    t0 = time.perf_counter()
    first = tool.invoke({"type": "tool_call", "id": "0", "name": tool.name, "args": args})
    cold = time.perf_counter() - t0
    warm = []
    for i in range(repeat):
        t0 = time.perf_counter()
        tool.invoke({"type": "tool_call", "id": str(i + 1), "name": tool.name, "args": args})
        warm.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    queue.put(
        {
            "tool": tool.gpt4tools_name,
            "load_name": load_name,
            "backends": ", ".join(f"{b.name} ({b.kind})" for b in tool.backends.values()),
            "status": first.status,
            "cold_s": cold,
            "warm_s": statistics.median(warm) if warm else cold,
            "peak_mib": max(0, peak - base) / 2**20,
        }
    )


def _machine() -> str:
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        mem = "RAM unknown"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem}, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm calls per tool (default: %(default)s)")
    parser.add_argument("--only", default=None, help="comma-separated load names, e.g. Image2Canny,FaceFinding")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from efe_langchain.tools.registry import list_tools

    infos = [i for i in list_tools() if i.available]
    # Reference checkpoints have their own benchmark with their weights; this one is what runs
    # out of the box.
    kinds = {i.name: {b.kind for b in i.backends if i.chosen.get(b.capability) == b.name} for i in infos}
    infos = [i for i in infos if kinds[i.name] and kinds[i.name] <= {"embedded", "classical"}]
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        infos = [i for i in infos if i.load_name in wanted]

    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    ctx = mp.get_context("spawn")
    rows = []
    for info in tqdm(infos, desc="tools", unit="tool"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(info.load_name, args.repeat, queue))
        proc.start()
        try:
            rows.append(queue.get(timeout=600))
        except Exception as exc:  # one failing tool must not hide the others' numbers
            rows.append({"tool": info.gpt4tools_name, "load_name": info.load_name, "status": f"failed: {exc}"})
        proc.join()

    canny = next((r["warm_s"] for r in rows if r.get("load_name") == "Image2Canny" and "warm_s" in r), None)
    print()
    print(f"machine: {_machine()}")
    # Other work on the machine slows every row alike; the ratios hold better than the seconds.
    print(f"load average at start / end: {load_start} / {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}")
    print(f"image: skimage astronaut, 512x512 RGB; warm = median of {args.repeat} calls after the first")
    print()
    header = f"{'tool':42s} {'load name':20s} {'cold s':>8s} {'warm s':>8s} {'x Canny':>8s} {'peak MiB':>9s}  backends"
    print(header)
    print("-" * len(header))
    for r in rows:
        if "warm_s" not in r:
            print(f"{r['tool']:42s} {r['load_name']:20s} {r['status']}")
            continue
        ratio = f"{r['warm_s'] / canny:8.1f}" if canny else f"{'-':>8s}"
        flag = "" if r["status"] == "success" else f"  [{r['status']}]"
        print(
            f"{r['tool']:42s} {r['load_name']:20s} {r['cold_s']:8.3f} {r['warm_s']:8.3f} {ratio} "
            f"{r['peak_mib']:9.1f}  {r['backends']}{flag}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": _machine(), "command": sys.argv, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
