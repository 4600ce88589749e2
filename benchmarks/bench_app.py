"""What the Streamlit page costs on top of the agent.

Usage:
    .venv/bin/python benchmarks/bench_app.py [--turns 1,10,40] [--repeats 5]

Two measures, in one process, through ``streamlit.testing.v1.AppTest`` (the page's real code):

* redraw: Streamlit runs the whole page again on every click, so a conversation is read back
  from the SQLite checkpointer and drawn anew each time. The script fills conversations of N
  turns (an upload, then per turn a question, an Edge Detection step with its real output image
  and an answer naming it) and times a plain rerun of the page, p50/p95;
* turn: one real turn with the embedded model and the edge tool, three ways, interleaved
  ``--repeats`` times: ``EFEAgent.stream`` on the main thread, ``turn_items`` (the same stream on
  the worker thread the page uses) and the page itself (upload and question in AppTest). The
  page/turn_items ratio is the page's own cost per turn. The main-thread row differs for a reason
  outside the app: torch's OpenMP team of 2 threads on the main thread slows down badly when the
  2 cores are shared with other work (with OMP_NUM_THREADS=1 both threads take the same time).

Prints the machine, the load average and the command; ratios come from this one run.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

APP = str(Path(__file__).resolve().parents[1] / "apps" / "streamlit_app.py")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def fill_conversation(app, thread: str, turns: int) -> None:
    """An upload and ``turns`` edge-detection turns, written the way the agent writes them."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    agent = app.agent
    path = agent.upload(photo_bytes(), thread)
    edge = next(t for t in agent.tools if t.gpt4tools_name == "Edge Detection On Image")
    messages = []
    for i in range(turns):
        out, artifact = edge._run(image_path=path)
        call = {"name": edge.name, "args": {"image_path": path}, "id": f"call_{i}", "type": "tool_call"}
        messages += [
            HumanMessage(f"Detect the edges of this image ({i})"),
            AIMessage("", tool_calls=[call]),
            ToolMessage(out, tool_call_id=f"call_{i}", name=edge.name, artifact=artifact),
            AIMessage(f"Here are the edges: {out}"),
        ]
    agent.graph.update_state({"configurable": {"thread_id": thread}}, {"messages": messages}, as_node="model")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="1,10,40", help="conversation lengths to redraw")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="efe-bench-app-"))
    os.environ.update({"EFE_WORKSPACE": str(work / "ws"), "EFE_LOAD": "Image2Canny_cpu", "EFE_MAX_TOOL_STEPS": "1"})
    from streamlit.testing.v1 import AppTest

    from efe_langchain.ui.agent_setup import build_agent, default_choice, turn_items

    t0 = time.perf_counter()
    first = AppTest.from_file(APP, default_timeout=900)
    first.run()
    cold = time.perf_counter() - t0
    assert not first.exception, first.exception
    # The page's own cached agent is not reachable from here; a second agent on the same model
    # object and workspace writes the conversations the page then reads.
    from efe_langchain.llm import load_embedded_llm

    llm = load_embedded_llm()
    app = build_agent(llm, default_choice(), ["edge_detection_on_image"], True, work / "ws", max_tool_steps=1)

    print(f"# bench_app: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, python {platform.python_version()}")
    print(f"# command: {' '.join([sys.executable, *sys.argv])}")
    print(f"cold start (embedded model load + first page run): {cold:.2f} s")

    print("\nredraw of a saved conversation (one page rerun)")
    print(f"{'turns':>6} {'p50 s':>8} {'p95 s':>8}")
    base = None
    for n in [int(x) for x in args.turns.split(",")]:
        thread = f"bench{n}"
        fill_conversation(app, thread, n)
        at = AppTest.from_file(APP, default_timeout=900)
        at.query_params["thread"] = thread
        at.run()
        assert not at.exception and len([s for s in at.status]) == n, (at.exception, len(at.status))
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t)
        base = base or statistics.median(times)
        print(f"{n:>6} {pct(times, .5):>8.3f} {pct(times, .95):>8.3f}   x{statistics.median(times) / base:.1f} of the first")

    print("\none turn (upload + 'Detect the edges of this image', one model call and the tool)")
    times: dict[str, list[float]] = {"EFEAgent.stream, main thread": [], "turn_items, worker thread": [], "page (AppTest)": []}
    for r in range(args.repeats):
        # Interleaved, so that load from other work on a shared machine hits all three alike.
        thread = f"direct{r}"
        app.agent.upload(photo_bytes(), thread)
        t = time.perf_counter()
        events = list(app.agent.stream("Detect the edges of this image", thread))
        times["EFEAgent.stream, main thread"].append(time.perf_counter() - t)
        assert any(e.kind == "tool_result" for e in events), events

        thread = f"worker{r}"
        app.agent.upload(photo_bytes(), thread)
        t = time.perf_counter()
        items = list(turn_items(app, "Detect the edges of this image", thread))
        times["turn_items, worker thread"].append(time.perf_counter() - t)
        assert items

        at = AppTest.from_file(APP, default_timeout=900)
        at.run()
        at.sidebar.file_uploader[0].set_value(("a.jpg", photo_bytes(), "image/jpeg"))
        at.run()
        at.chat_input[0].set_value("Detect the edges of this image")
        t = time.perf_counter()
        at.run()
        times["page (AppTest)"].append(time.perf_counter() - t)
        assert not at.exception and at.status, at.exception
    print(f"{'method':>30} {'p50 s':>8} {'p95 s':>8}")
    for name, values in times.items():
        print(f"{name:>30} {pct(values, .5):>8.2f} {pct(values, .95):>8.2f}")
    worker, page = (statistics.median(times[k]) for k in ("turn_items, worker thread", "page (AppTest)"))
    main_thread = statistics.median(times["EFEAgent.stream, main thread"])
    print(f"page / turn_items (p50): {page / worker:.2f}   (the page's own cost per turn)")
    print(f"main thread / worker thread (p50): {main_thread / worker:.2f}   (same agent, same work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
