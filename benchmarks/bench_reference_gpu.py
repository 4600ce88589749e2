"""GPU memory and latency of every reference backend, on full-size random models (no download).

The published architectures (BLIP base, GroundingDINO Swin-T, SAM ViT-H, SD 1.5 with its safety
checker, SD 1.5 ControlNets, InstructPix2Pix, SD inpainting, DPT-Large) are built with random
weights from their configs (``efe_langchain.backends.reference.testing``), saved in fp16, and run
through the backends' real loaders on one GPU. Random weights change no shape, so memory and time
are those of the real checkpoints (SAM's automatic masks and GroundingDINO's boxes are filtered
differently, which changes only the cheap post-processing).

For each tool: load time, first and warm call time, peak GPU memory (allocated by tensors and
reserved by PyTorch's allocator) and ``estimate_memory`` for the same folders, with the ratio
estimate / peak reserved. Also: the parameter counts measured on these folders against the
published counts in ``config.CHECKPOINTS``, and the shared-base rule on the GPU (canny + depth
ControlNets + text2image hold one SD base).

    python benchmarks/bench_reference_gpu.py --device cuda:0 --out results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

GIB = 1024**3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--root", default=None, help="where to write the model folders (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write the results as JSON here too")
    parser.add_argument("--only", default="", help="comma-separated tool names to run (default: all)")
    parser.add_argument("--sam-points", type=int, default=32, help="SAM segment-everything grid side (GPT4Tools: 32)")
    parser.add_argument("--size", default="full", choices=("full", "tiny"), help="tiny: a quick CPU smoke run of this script")
    args = parser.parse_args(argv)

    import torch

    from efe_langchain.backends.reference import shared
    from efe_langchain.backends.reference.blip import BlipCaptionBackend, BlipVqaBackend
    from efe_langchain.backends.reference.config import CHECKPOINTS
    from efe_langchain.backends.reference.diffusion import (
        ControlNetBackend,
        InpaintingBackend,
        InstructPix2PixBackend,
        StableDiffusionBackend,
    )
    from efe_langchain.backends.reference.dpt import DptDepthBackend, DptNormalBackend
    from efe_langchain.backends.reference.grounding_dino import GroundingDinoBackend
    from efe_langchain.backends.reference.memory import count_parameters, estimate_checkpoints
    from efe_langchain.backends.reference.sam import GroundedSamBackend, SamBackend
    from efe_langchain.backends.reference import testing

    device = args.device
    cuda = device.startswith("cuda")

    class _NoCuda:  # CPU smoke runs: same code path, memory figures read 0
        def __getattr__(self, name):
            return lambda *a, **k: 0 if name.startswith(("memory", "max_memory")) else None

    mem = torch.cuda if cuda else _NoCuda()
    root = Path(args.root or tempfile.mkdtemp(prefix="efe-ref-"))
    header = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "gpu": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(header))

    t0 = time.perf_counter()
    # Build on the GPU: random init of ~5 B parameters is minutes on CPU, seconds here.
    with torch.device(device if cuda else "cpu"):
        builders = {
            "blip-caption": lambda: testing.build_blip(root / "blip-caption", "BlipForConditionalGeneration", size=args.size),
            "blip-vqa": lambda: testing.build_blip(root / "blip-vqa", "BlipForQuestionAnswering", size=args.size),
            "grounding-dino": lambda: testing.build_grounding_dino(root / "grounding-dino", size=args.size),
            "sam": lambda: testing.build_sam(root / "sam", size=args.size),
            "dpt-large": lambda: testing.build_dpt(root / "dpt-large", size=args.size),
        }  # fmt: skip
        # --only sam,segment_all...: build just what those cases need (saves minutes of GPU time).
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        paths = {k: build() for k, build in builders.items() if not wanted or k in wanted or k in _NEEDS(wanted)}
        with_sd = not wanted or "sd15" in _NEEDS(wanted)
        if with_sd:
            sd = testing.build_sd_family(root / "sd", size=args.size, parts=("base", "canny", "depth", "instruct", "inpaint"))
            paths.update({"sd15": sd["base"], "controlnet-canny": sd["canny"], "controlnet-depth": sd["depth"],
                          "instruct-pix2pix": sd["instruct"], "sd-inpainting": sd["inpaint"]})  # fmt: skip
    sizes = (512, 512) if args.size == "full" else (64, 64)
    gc.collect(), mem.empty_cache()
    print(f"built full-size folders in {time.perf_counter() - t0:.1f} s under {root}")
    # Lay them out as `hf download <id> --local-dir $EFE_MODEL_DIR/<id>` would, so estimates go
    # through the same lookup as `efe tools --memory` (exact counts + per-checkpoint working set).
    hub = root / "hub"
    for key, folder in paths.items():
        link = hub / CHECKPOINTS[key].hub_id
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(folder.resolve(), target_is_directory=True)
    if cuda:
        free, total = torch.cuda.mem_get_info(device)
        header["cuda_context_gib"] = round((total - free - torch.cuda.memory_reserved(device)) / GIB, 3)
        print(f"CUDA context (and anything else on the GPU): {header['cuda_context_gib']} GiB")

    counts = []
    for key, folder in paths.items():
        measured, published = count_parameters(folder), CHECKPOINTS[key].params
        counts.append({"checkpoint": key, "params_built": measured, "params_table": published,
                       "ratio": round(measured / published, 4)})  # fmt: skip
        print(f"params {key:18s} built {measured / 1e6:9.1f} M  table {published / 1e6:9.1f} M  ratio {measured / published:.3f}")

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (sizes[1], sizes[0], 3), dtype=np.uint8))
    mask = np.zeros(sizes[::-1], dtype=bool)
    mask[sizes[1] // 4 : 3 * sizes[1] // 4, sizes[0] // 3 : 2 * sizes[0] // 3] = True
    P = {k: str(v) for k, v in paths.items()}
    cases = {
        "caption": (["blip-caption"], lambda: BlipCaptionBackend(device, checkpoint=P["blip-caption"]), lambda b: b.caption(photo)),
        "vqa": (["blip-vqa"], lambda: BlipVqaBackend(device, checkpoint=P["blip-vqa"]), lambda b: b.vqa(photo, "what is in the picture?")),
        "detect": (["grounding-dino"], lambda: GroundingDinoBackend(device, checkpoint=P["grounding-dino"]), lambda b: b.detect(photo, "a cat. a dog.")),
        "segment_all": (["sam"], lambda: SamBackend(device, checkpoint=P["sam"], points_per_side=args.sam_points), lambda b: b.segment_all(photo)),
        # Worst case for post-processing: every one of the 3 x 32 x 32 masks passes the filters.
        "segment_all-keep-all": (["sam"], lambda: SamBackend(device, checkpoint=P["sam"], points_per_side=args.sam_points,
                                                              pred_iou_thresh=-1e9, stability_score_thresh=0.0),
                                 lambda b: b.segment_all(photo)),
        "segment_object": (["grounding-dino", "sam"],
                           lambda: GroundedSamBackend(device, detector=P["grounding-dino"], checkpoint=P["sam"], box_threshold=0.0),
                           lambda b: b.segment_object(photo, "cat")),
        "depth": (["dpt-large"], lambda: DptDepthBackend(device, checkpoint=P["dpt-large"]), lambda b: b.depth(photo)),
        "normal (dpt-large weights)": (["dpt-large"], lambda: DptNormalBackend(device, checkpoint=P["dpt-large"]), lambda b: b.normal(photo)),
        "text2image (50 steps)": (["sd15"], lambda: StableDiffusionBackend(device, base=P["sd15"]), lambda b: b.text2image("a cat", seed=0)),
        "controlnet canny (20 steps)": (["sd15", "controlnet-canny"],
                                        lambda: ControlNetBackend(device, base=P["sd15"], controlnet_canny=P["controlnet-canny"], conditions="canny"),
                                        lambda b: b.controlnet("canny", photo, "a cat", seed=0)),
        "instruct (40 steps)": (["instruct-pix2pix"], lambda: InstructPix2PixBackend(device, checkpoint=P["instruct-pix2pix"]),
                                lambda b: b.instruct(photo, "make it red", seed=0)),
        "inpaint (50 steps)": (["sd-inpainting"], lambda: InpaintingBackend(device, checkpoint=P["sd-inpainting"]),
                               lambda b: b.inpaint(photo, mask, "a dog", seed=0)),
    }  # fmt: skip
    rows = []
    for name, (checkpoints, make, call) in cases.items():
        if wanted and name.split(" ")[0] not in wanted:
            continue
        shared.clear_cache()
        gc.collect(), mem.empty_cache(), mem.reset_peak_memory_stats(device)
        start = mem.memory_allocated(device)
        try:
            t = time.perf_counter()
            backend = make().load()
            mem.synchronize(device)
            load_s = time.perf_counter() - t
            t = time.perf_counter()
            out = call(backend)
            mem.synchronize(device)
            first_s = time.perf_counter() - t
            t = time.perf_counter()
            call(backend)
            mem.synchronize(device)
            warm_s = time.perf_counter() - t
        except Exception as exc:  # one broken case must not hide the others' numbers
            print(f"{name}: FAILED {type(exc).__name__}: {exc}")
            rows.append({"tool": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        peak_alloc = mem.max_memory_allocated(device) - start
        peak_reserved = mem.max_memory_reserved(device)
        estimate = estimate_checkpoints(checkpoints, "float16", model_dir=str(hub))
        kind = type(out).__name__ + (f" {out.size}" if hasattr(out, "size") and not callable(out.size) else "")
        if isinstance(out, np.ndarray):
            kind = f"ndarray {out.dtype} {out.shape}"
        row = {"tool": name, "output": kind, "load_s": round(load_s, 2), "first_call_s": round(first_s, 3),
               "warm_call_s": round(warm_s, 3), "peak_allocated_gib": round(peak_alloc / GIB, 3),
               "peak_reserved_gib": round(peak_reserved / GIB, 3), "estimate_gib": round(estimate / GIB, 3),
               "estimate_over_reserved": round(estimate / max(peak_reserved, 1), 3)}  # fmt: skip
        rows.append(row)
        print("\n" + json.dumps(row))  # own line: progress bars share the terminal
        del backend
    shared.clear_cache()
    gc.collect(), mem.empty_cache(), mem.reset_peak_memory_stats(device)

    result = {**header, "params": counts, "tools": rows}
    if with_sd:
        result["sharing"] = _sharing(P, photo, device, mem)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


def _NEEDS(cases: set[str]) -> set[str]:  # noqa: N802 - a table in function form
    table = {"caption": {"blip-caption"}, "vqa": {"blip-vqa"}, "detect": {"grounding-dino"}, "segment_all": {"sam"},
             "segment_all-keep-all": {"sam"}, "segment_object": {"grounding-dino", "sam"}, "depth": {"dpt-large"},
             "normal": {"dpt-large"}, "text2image": {"sd15"}, "controlnet": {"sd15"}, "instruct": {"sd15"},
             "inpaint": {"sd15"}}  # fmt: skip
    return set().union(*(table.get(c, set()) for c in cases)) if cases else set()


def _sharing(P: dict, photo, device: str, mem) -> dict:
    """Two ControlNet tools and text2image on one GPU hold one SD base (and two ControlNets)."""
    from efe_langchain.backends.reference import shared
    from efe_langchain.backends.reference.diffusion import ControlNetBackend, StableDiffusionBackend
    from efe_langchain.backends.reference.memory import count_parameters

    before = mem.memory_allocated(device)
    canny = ControlNetBackend(device, base=P["sd15"], controlnet_canny=P["controlnet-canny"], conditions="canny", steps=2)
    depth = ControlNetBackend(device, base=P["sd15"], controlnet_depth=P["controlnet-depth"], conditions="depth", steps=2)
    text2image = StableDiffusionBackend(device, base=P["sd15"], steps=2)
    canny.controlnet("canny", photo, "a cat", seed=0), depth.controlnet("depth", photo, "a cat", seed=0)
    text2image.text2image("a cat", seed=0)
    held = mem.memory_allocated(device) - before
    expected = 2 * (count_parameters(P["sd15"]) + count_parameters(P["controlnet-canny"]) + count_parameters(P["controlnet-depth"]))
    sharing = {"held_gib": round(held / GIB, 3), "one_base_plus_two_controlnets_gib": round(expected / GIB, 3),
               "sd_base_loads": sum(n for k, n in shared.load_counts.items() if k[0] == "StableDiffusionPipeline")}  # fmt: skip
    print("sharing", json.dumps(sharing))
    return sharing


if __name__ == "__main__":
    sys.exit(main())
