"""PNG zlib level of workspace writes: tool latency at PIL's default level 6 against level 1.

Both workspaces run the same tools interleaved, so machine load hits both alike; prints one ratio
per tool from this run.

    .venv/bin/python benchmarks/bench_png_level.py
"""

import os
import platform
import sys
import statistics, tempfile, time
import skimage.data as d
from PIL import Image
from efe_langchain.tools import load_tools
from efe_langchain.workspace import Workspace
res = {}
tools = {}
for lvl in (6, 1):
    ws = Workspace(tempfile.mkdtemp(), png_compress_level=lvl)
    rel = ws.add_image(Image.fromarray(d.astronaut()))
    tools[lvl] = (load_tools(["Image2Canny", "ImageEnhancing"], workspace=ws), rel)
for _ in range(15):  # interleaved so machine load hits both alike
    for lvl, (ts, rel) in tools.items():
        for t in ts:
            a = time.perf_counter(); t.invoke({"image_path": rel}); res.setdefault((lvl, t.spec_load_name()), []).append(time.perf_counter() - a)
print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
print(f"command: {' '.join([os.path.relpath(sys.executable)] + sys.argv)}")
for name in ("Image2Canny", "ImageEnhancing"):
    m6, m1 = statistics.median(res[(6, name)]), statistics.median(res[(1, name)])
    print(f"{name}: level 6 {m6*1000:.0f} ms, level 1 {m1*1000:.0f} ms, ratio {m6/m1:.2f}x")
