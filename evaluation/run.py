"""Orchestration: model specs -> runners -> rollouts -> stored predictions -> metrics -> report.

Predictions are appended to JSONL files one record at a time as they finish, so a crash, a
Ctrl-C or a server that dies loses nothing; a rerun with the same ``--out`` skips every id already
stored (in any ``predictions*.jsonl`` of the run's folder, so a rerun may use another number of
GPUs). Under ``torchrun`` / ``accelerate launch`` each rank takes the records ``i % world_size ==
rank`` and appends to its own shard; rank 0 waits for every id to be stored, then merges.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from efe_langchain import react
from efe_langchain.evaluation.metrics import aggregate, score_record
from efe_langchain.evaluation.records import (
    EvalRecord,
    load_records,
    n_args_by_name,
    prompt_tools,
    reference_observations,
    reference_tools,
)
from efe_langchain.evaluation.runners import (
    PRICES,
    LocalRunner,
    OpenAIChatRunner,
    OpenAICompletionsRunner,
    OpenAIToolsRunner,
    ReferenceRunner,
    RolloutState,
    RunnerError,
    Usage,
)

__all__ = [
    "ModelSpec",
    "parse_model_spec",
    "rollout",
    "PredictionStore",
    "shard",
    "dist_info",
    "score_predictions",
    "evaluate_runner",
    "run_evaluation",
    "NO_TOOL",
]

NO_TOOL = "(no tool)"
# Placeholder observation when a model calls more tools than the reference has steps.
EXTRA_OBSERVATION = "[output]"

_COMPLETION_MODELS = re.compile(r"(-instruct$|^davinci|^babbage|^text-)")


@dataclass(frozen=True)
class ModelSpec:
    """A ``--model`` value, parsed. ``kind``: local | openai-completions | openai-chat | openai-tools."""

    text: str
    kind: str
    name: str  # local: "embedded" or a path / hub id; openai: the model name
    adapters: tuple[str, ...] = ()
    embedded_adapter: str | None = "default"

    @property
    def label(self) -> str:
        """A file-name-safe label for the run's folder and the report's columns."""
        return re.sub(r"[^A-Za-z0-9._+-]+", "_", self.text).strip("_") or "model"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_model_spec(text: str) -> ModelSpec:
    """``embedded``, ``embedded:noadapter``, ``openai[-completions|-chat|-tools]:MODEL``, ``PATH[+ADAPTER...]``,
    or ``reference`` (the oracle that replays the references: a check of file and scorer)."""
    text = text.strip()
    if text == "reference":
        return ModelSpec(text, "reference", "reference")
    if text == "embedded":
        return ModelSpec(text, "local", "embedded", embedded_adapter="default")
    if text in ("embedded:noadapter", "embedded:base"):
        return ModelSpec(text, "local", "embedded", embedded_adapter=None)
    if text.startswith("embedded:"):
        raise ValueError(f"unknown model {text!r}: use 'embedded' (with its adapter) or 'embedded:noadapter'")
    m = re.match(r"^openai(?:-(completions|chat|tools))?:(.+)$", text)
    if m:
        flavour, name = m.group(1), m.group(2).strip()
        if not name:
            raise ValueError(f"unknown model {text!r}: name the model after 'openai:'")
        if flavour is None:
            flavour = "completions" if _COMPLETION_MODELS.search(name) else "chat"
        return ModelSpec(text, f"openai-{flavour}", name)
    base, *adapters = text.split("+")
    for part in [base, *adapters]:
        local = part.startswith((".", "/", "~")) or os.path.exists(part)
        if local and not Path(part).expanduser().exists():
            raise ValueError(f"unknown model {text!r}: {part} does not exist")
        if not local and not _HUB_ID.match(part):
            raise ValueError(
                f"unknown model {text!r}: expected 'embedded', 'embedded:noadapter', 'openai:MODEL', "
                "'openai-chat:MODEL', 'openai-tools:MODEL', or a model folder / hub id with optional '+ADAPTER'"
            )
    return ModelSpec(text, "local", base, adapters=tuple(adapters))


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as torchrun and accelerate set them; (0, 1, 0) otherwise."""
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    return rank, world, local


def shard(records: Sequence[EvalRecord], rank: int, world_size: int) -> list[EvalRecord]:
    """The records rank ``rank`` evaluates: those at positions ``i % world_size == rank``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad shard rank {rank} of world size {world_size}")
    return [r for i, r in enumerate(records) if i % world_size == rank]


# ---- rollout ------------------------------------------------------------------------------------
def rollout(runner: Any, states: Sequence[RolloutState], extra_steps: int = 1) -> None:
    """Step every state until it answers, stops calling tools, or exceeds the reference's steps.

    After a tool call the reference's observation for that step is appended (the evaluation's
    stand-in for running the tool), formatted as the reference writes it, so a multi-step chain
    is scored on the model's own chain.
    """
    active = [s for s in states if not s.done]
    while active:
        outs = runner.step(active)
        if len(outs) != len(active):
            raise RunnerError(f"runner returned {len(outs)} steps for {len(active)} prompts")
        still = []
        for s, text in zip(active, outs):
            s.output += text
            parsed = react.parse(text) if text.strip() else None
            ref_obs = reference_observations(s.record.output)
            cap = max(len(ref_obs), 1) + extra_steps
            if isinstance(parsed, react.ToolCall):
                i = len(s.steps)
                obs = ref_obs[i].strip("\n") if i < len(ref_obs) else EXTRA_OBSERVATION
                s.output += f"\n{react.OBSERVATION_PREFIX}\n{obs}\n"
                s.steps.append((parsed.tool, parsed.tool_input, obs.strip()))
                if len(s.steps) < cap:
                    still.append(s)
                    continue
            s.done = True
        active = still


# ---- storage -------------------------------------------------------------------------------------
class PredictionStore:
    """Append-only JSONL predictions of one run folder (one file per rank), plus the merged JSON."""

    def __init__(self, folder: str | Path, rank: int = 0, world_size: int = 1):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = "predictions.jsonl" if world_size == 1 else f"predictions.rank{rank}-of-{world_size}.jsonl"
        self.path = self.folder / name

    def load(self) -> dict[str, dict]:
        """Every stored prediction by id key; a torn last line (a crash mid-write) is skipped."""
        found: dict[str, dict] = {}
        for path in sorted(self.folder.glob("predictions*.jsonl")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    found[str(item["id"])] = item
                except (json.JSONDecodeError, KeyError, TypeError):
                    print(f"warning: {path}:{n}: unreadable line skipped (interrupted write?)", file=sys.stderr)
        return found

    def append(self, items: Iterable[dict]) -> None:
        torn = False
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        with self.path.open("a", encoding="utf-8") as f:
            if torn:  # a torn line from a crash would glue onto this one: start on a fresh line
                f.write("\n")
            for item in items:
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_json(self, records: Sequence[EvalRecord], found: dict[str, dict]) -> Path:
        """``predictions.json``: ``[{"id", "output"}]`` in annotation order (GPT4Tools' layout)."""
        preds = [{"id": r.id, "output": found[r.key]["output"]} for r in records if r.key in found]
        return _atomic_json(self.folder / "predictions.json", preds)


def _first_seen(metrics_path: Path, now: str) -> str:
    """When this run folder was first scored: kept from its earlier ``metrics.json``, else ``now``.

    The report orders its columns by it, so a rerun does not move a model to the end.
    """
    try:
        earlier = json.loads(metrics_path.read_text(encoding="utf-8")).get("first_seen")
    except (OSError, ValueError, AttributeError):
        earlier = None
    return earlier if isinstance(earlier, str) and earlier else now


def _atomic_json(path: Path, data: Any) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---- scoring --------------------------------------------------------------------------------------
def score_predictions(records: Sequence[EvalRecord], outputs: dict[str, str], variant: str = "spec") -> dict[str, Any]:
    """Overall and per-tool metrics (percent) of the records that have a prediction.

    A record counts for every tool its reference calls (a chain counts for each of its tools);
    records whose reference calls none are grouped under ``(no tool)``.
    """
    scores = []
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        if r.key not in outputs:
            continue
        s = score_record(
            r.output, outputs[r.key], instruction=r.instruction,
            n_args=n_args_by_name(prompt_tools(r.instruction)), variant=variant,
        )
        scores.append(s)
        for tool in dict.fromkeys(reference_tools(r.output)) or [NO_TOOL]:
            groups[tool].append(s)
    return {
        "n_records": len(records),
        "n_scored": len(scores),
        "complete": len(scores) == len(records),
        "overall": aggregate(scores),
        "per_tool": {tool: aggregate(groups[tool]) for tool in sorted(groups)},
    }


# ---- one run ----------------------------------------------------------------------------------------
def evaluate_runner(
    runner: Any,
    records: Sequence[EvalRecord],
    folder: str | Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    desc: str = "",
    merge_timeout: float = 3600.0,
) -> dict[str, Any]:
    """Predict the not-yet-stored records of this rank's shard, then (rank 0) merge and score.

    Raises ``RunnerError`` when the model fails for good; everything finished before is stored.
    Returns ``{"predictions": {...}, "elapsed_s", "new_records", "usage"}`` (rank 0 after merging).
    """
    store = PredictionStore(folder, rank, world_size)
    found = store.load()
    todo = [r for r in shard(records, rank, world_size) if r.key not in found]
    chunk = max(1, int(getattr(runner, "chunk_size", 1)))
    bar = _progress(len(shard(records, rank, world_size)), len(shard(records, rank, world_size)) - len(todo), desc, progress and rank == 0)
    t0 = time.perf_counter()
    done = 0
    try:
        for i in range(0, len(todo), chunk):
            states = [RolloutState(r) for r in todo[i : i + chunk]]
            rollout(runner, states)
            store.append({"id": s.record.id, "output": s.output, "usage": s.usage} for s in states)
            done += len(states)
            bar.update(len(states))
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    if rank != 0:
        return {"predictions": {}, "elapsed_s": elapsed, "new_records": done}

    wanted = {r.key for r in records}
    deadline = time.monotonic() + merge_timeout
    found = store.load()
    while not wanted <= set(found) and world_size > 1:
        if time.monotonic() > deadline:
            missing = len(wanted - set(found))
            raise RunnerError(f"rank 0 waited {merge_timeout:.0f}s and {missing} record(s) of other ranks are still missing")
        time.sleep(1.0)
        found = store.load()
    store.write_json(records, found)
    return {"predictions": found, "elapsed_s": elapsed, "new_records": done, "usage": total_usage(found)}


def total_usage(found: dict[str, dict]) -> Usage:
    """Token counts summed over stored predictions (so a resumed run still counts its first part)."""
    usage = Usage()
    for item in found.values():
        u = item.get("usage") or {}
        usage.prompt_tokens += int(u.get("prompt_tokens", 0))
        usage.completion_tokens += int(u.get("completion_tokens", 0))
        usage.calls += int(u.get("calls", 0))
    return usage


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc or "records", unit="rec", dynamic_ncols=True)


# ---- loading models --------------------------------------------------------------------------------
def load_local_llm(spec: ModelSpec, device: str | None = None):
    """A ``LocalLLM`` for a local spec; on a multi-GPU launch each rank uses its own GPU."""
    from efe_langchain.llm import LocalLLM, load_embedded_llm

    kwargs: dict[str, Any] = {}
    if device:
        kwargs["device"] = device
    if spec.name == "embedded":
        return load_embedded_llm(adapter=spec.embedded_adapter, **kwargs)
    return LocalLLM.from_pretrained(spec.name, adapters=list(spec.adapters), **kwargs)


def make_openai_runner(spec: ModelSpec, **options: Any):
    cls = {"openai-completions": OpenAICompletionsRunner, "openai-chat": OpenAIChatRunner, "openai-tools": OpenAIToolsRunner}[spec.kind]
    return cls(spec.name, **options)


# ---- the whole command ------------------------------------------------------------------------------
@dataclass
class RunResult:
    label: str
    folder: Path
    metrics: dict[str, Any] | None = None
    error: str | None = None


def run_evaluation(
    annotations: str | Path,
    models: Sequence[str],
    out: str | Path,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    decoding: str = "both",
    max_new_tokens: int = 128,
    tool_orders: int | None = None,
    order_confidence: float | None = None,
    openai_options: dict[str, Any] | None = None,
    prices: dict[str, tuple[float, float]] | None = None,
    device: str | None = None,
    variant: str = "spec",
    progress: bool = True,
    llm_loader: Callable[[ModelSpec, str | None], Any] = load_local_llm,
) -> list[RunResult]:
    """Evaluate every model on the annotation file; write predictions, metrics and the report.

    A model that fails (unreachable server, garbage answers, missing weights) is reported with its
    error and the others still run; what it finished stays stored for the next attempt. The report
    also shows the runs earlier invocations stored in ``out`` for the same annotation file.
    """
    from efe_langchain.evaluation.report import collect_runs, write_report

    if decoding not in ("free", "constrained", "both"):
        raise ValueError(f"--decoding must be free, constrained or both, not {decoding!r}")
    if tool_orders is not None and int(tool_orders) < 1:
        raise ValueError(f"--tool-orders must be at least 1, not {tool_orders!r}")
    if order_confidence is not None and not 0.0 <= float(order_confidence) <= 1.0:
        raise ValueError(f"--order-confidence must be a probability in [0, 1], not {order_confidence!r}")
    specs = [parse_model_spec(m) for m in models]  # every spec checked before any work starts
    if not specs:
        raise ValueError("give at least one --model")
    records = load_records(annotations, limit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank, world, local_rank = dist_info()
    if device is None and world > 1:
        device = f"cuda:{local_rank}"
    table = dict(PRICES, **(prices or {}))
    results: list[RunResult] = []
    # one timestamp per invocation: its models then keep their command-line order in the report
    started = datetime.now(timezone.utc).isoformat(timespec="microseconds")

    for spec in specs:
        if spec.kind == "local":
            decodings = ["free", "constrained"] if decoding == "both" else [decoding]
            try:
                llm = llm_loader(spec, device)
            except Exception as exc:  # weights missing, bad adapter: this model only
                for d in decodings:
                    results.append(RunResult(f"{spec.label}@{d}", out / f"{spec.label}@{d}", error=f"loading {spec.text}: {exc}"))
                continue
            if tool_orders is not None and hasattr(llm, "tool_orders"):
                llm.tool_orders = int(tool_orders)
            if order_confidence is not None and hasattr(llm, "tool_order_confidence"):
                llm.tool_order_confidence = float(order_confidence)
            # Another tool-order count or order gate is another decoder: its predictions get their own folder.
            orders = getattr(llm, "tool_orders", 3)
            from efe_langchain.decoding import DEFAULT_ORDER_CONFIDENCE

            gate = getattr(llm, "tool_order_confidence", DEFAULT_ORDER_CONFIDENCE)
            other = (f"-o{orders}" if orders != 3 else "") + (f"-g{gate:g}" if gate != DEFAULT_ORDER_CONFIDENCE and orders > 1 else "")
            names = {d: f"{spec.label}@{d}" + (other if d == "constrained" else "") for d in decodings}
            jobs = [(names[d], LocalRunner(llm, decoding=d, batch_size=batch_size, max_new_tokens=max_new_tokens), d) for d in decodings]
        elif spec.kind == "reference":
            jobs = [(spec.label, ReferenceRunner(), "oracle")]
        else:
            try:
                runner = make_openai_runner(spec, max_tokens=max(max_new_tokens, 256), **(openai_options or {}))
            except RunnerError as exc:
                results.append(RunResult(spec.label, out / spec.label, error=str(exc)))
                continue
            jobs = [(spec.label, runner, "api")]
        for label, runner, dec in jobs:
            folder = out / label
            error = None
            try:
                res = evaluate_runner(runner, records, folder, rank=rank, world_size=world, progress=progress, desc=label)
            except RunnerError as exc:
                error = str(exc)
                res = None
            if rank != 0:
                continue
            found = res["predictions"] if res else PredictionStore(folder).load()
            if not res:
                PredictionStore(folder).write_json(records, found)
            metrics = score_predictions(records, {k: v["output"] for k, v in found.items()}, variant=variant)
            usage = res["usage"] if res else total_usage(found)
            model_name = spec.name if spec.kind != "local" else spec.text
            metrics.update({
                "model": spec.text,
                "kind": spec.kind,
                "decoding": dec,
                "annotations": str(annotations),
                "annotations_path": str(Path(annotations).expanduser().resolve()),
                "first_seen": _first_seen(folder / "metrics.json", started),
                "scorer": variant,
                "error": error,
                "usage": {
                    "calls": usage.calls,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cost_usd": usage.cost(model_name, table),
                },
                "elapsed_s": round(res["elapsed_s"], 3) if res else None,
                "new_records": res["new_records"] if res else None,
            })
            _atomic_json(folder / "metrics.json", metrics)
            results.append(RunResult(label, folder, metrics, error))
    if rank == 0:
        runs, unreadable, other_files = collect_runs(out, annotations, [(r.label, r.metrics) for r in results if r.metrics])
        failed = [(r.label, r.error) for r in results if r.error and not r.metrics]
        write_report(out, runs, failed + unreadable, other_files)
    return results
