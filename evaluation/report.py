"""The comparison report: models side by side as a Markdown table and a bar chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

__all__ = ["markdown_table", "per_tool_table", "write_report", "bar_chart", "collect_runs"]

_ROWS = [
    ("SR_t", "SR_t (thought)"),
    ("SR_act", "SR_act (tool name)"),
    ("SR_args", "SR_args (arguments)"),
    ("SR", "SR (GPT4Tools)"),
    ("strict", "strict SR"),
    ("IoU", "step IoU"),
]
_CHART = ("SR_t", "SR_act", "SR_args", "SR", "strict")


def _fmt(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, (int, float)) else "-"


def markdown_table(runs: Sequence[tuple[str, dict]]) -> str:
    """Metrics as rows, runs as columns (percent), with counts, errors and API cost below."""
    head = "| metric | " + " | ".join(label for label, _ in runs) + " |"
    sep = "|---|" + "---:|" * len(runs)
    lines = [head, sep]
    for key, name in _ROWS:
        lines.append(f"| {name} | " + " | ".join(_fmt(m["overall"].get(key)) for _, m in runs) + " |")
    lines.append("| records scored | " + " | ".join(f"{m['n_scored']}/{m['n_records']}" for _, m in runs) + " |")
    costs = []
    for _, m in runs:
        u = m.get("usage") or {}
        if u.get("prompt_tokens") or u.get("completion_tokens"):
            c = u.get("cost_usd")
            costs.append(f"{u['prompt_tokens']}+{u['completion_tokens']} tok" + (f", ${c:.4f}" if c is not None else ""))
        else:
            costs.append("-")
    lines.append("| tokens in+out, cost | " + " | ".join(costs) + " |")
    return "\n".join(lines) + "\n"


def per_tool_table(runs: Sequence[tuple[str, dict]], metric: str = "SR") -> str:
    tools = sorted({t for _, m in runs for t in m.get("per_tool", {})})
    lines = [f"| tool ({metric}, %) | n | " + " | ".join(label for label, _ in runs) + " |", "|---|---:|" + "---:|" * len(runs)]
    for tool in tools:
        n = max((m["per_tool"].get(tool, {}).get("n", 0) for _, m in runs), default=0)
        cells = [_fmt(m.get("per_tool", {}).get(tool, {}).get(metric)) for _, m in runs]
        lines.append(f"| {tool} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(runs: Sequence[tuple[str, dict]], path: str | Path) -> Path:
    """Grouped bars: one group per metric, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    path = Path(path)
    n = max(len(runs), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(_CHART) + 0.6 * n), 4))
    for i, (label, m) in enumerate(runs):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(_CHART))]
        ys = [m["overall"].get(k, 0.0) for k in _CHART]
        bars = ax.bar(xs, ys, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(_CHART)), list(_CHART))
    ax.set_ylim(0, 105)
    ax.set_ylabel("percent")
    ax.set_title("GPT4Tools metrics")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    # the labels also go into the PNG's text chunks, so a script can tell which runs a chart shows
    fig.savefig(path, dpi=120, metadata={"Title": "GPT4Tools metrics", "Models": "\n".join(label for label, _ in runs)})
    plt.close(fig)
    return path


# ---- every run stored in an output folder ---------------------------------------------------------------
def _resolved(path: Any) -> Path | None:
    return Path(str(path)).expanduser().resolve() if path else None


def _same_annotations(metrics: dict, annotations: Path) -> bool:
    # ``annotations_path`` is absolute; older metrics only have the path as typed on the command line
    return _resolved(metrics.get("annotations_path") or metrics.get("annotations")) == annotations


def _read_metrics(path: Path) -> dict:
    """A stored ``metrics.json``; ``ValueError`` when it cannot be read or lacks what the report shows."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(metrics, dict) and isinstance(metrics.get("overall"), dict)
            and isinstance(metrics.get("n_scored"), int) and isinstance(metrics.get("n_records"), int)):
        raise ValueError("not a metrics file (no 'overall', 'n_scored', 'n_records')")
    return metrics


def collect_runs(
    out: str | Path, annotations: str | Path, current: Sequence[tuple[str, dict]] = ()
) -> tuple[list[tuple[str, dict]], list[tuple[str, str]], list[str]]:
    """Every run whose metrics are stored in ``out`` for ``annotations``, the ``current`` ones as given.

    A run is its folder ``out/<label>/`` (``run_evaluation``'s layout: one per model and decoding),
    so a model evaluated by an earlier invocation keeps its column. Order: first evaluated first
    (``first_seen`` in its metrics; folders from before that field first, by name), ties in the
    order of ``current``. Returns ``(runs, unreadable, other_files)``: ``unreadable`` is
    (label, problem) of stored metrics that could not be read, ``other_files`` notes runs of another
    annotation file, which the report leaves out.
    """
    out = Path(out)
    wanted = _resolved(annotations)
    runs = dict(current)
    unreadable: list[tuple[str, str]] = []
    other_files: list[str] = []
    for path in sorted(out.glob("*/metrics.json")):
        label = path.parent.name
        if label in runs:
            continue  # this invocation's results are newer than what is on disk
        try:
            metrics = _read_metrics(path)
        except ValueError as exc:
            unreadable.append((label, f"stored metrics `{path}` unreadable ({exc}); not in the table, rerun this model to rescore it"))
            continue
        if _same_annotations(metrics, wanted):
            runs[label] = metrics
        else:
            other_files.append(f"{label} (annotations `{metrics.get('annotations', '?')}`)")
    position = {label: i for i, (label, _) in enumerate(current)}
    order = sorted(runs, key=lambda label: (str(runs[label].get("first_seen") or ""), position.get(label, len(position)), label))
    return [(label, runs[label]) for label in order], unreadable, other_files


def write_report(
    out: str | Path,
    runs: Sequence[tuple[str, dict]],
    failed: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> Path:
    """``report.md`` and ``report.png`` in ``out``; returns the Markdown path.

    ``failed``: (label, error) of models that produced nothing (no key, weights missing) or whose
    stored metrics are unreadable. ``notes``: lines listed under "Not shown" (runs of another file).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Evaluation report", ""]
    if runs:
        first = runs[0][1]
        md += [f"Annotations: `{first.get('annotations', '')}`; scorer: GPT4Tools ({first.get('scorer', 'spec')}) "
               "plus strict SR. All numbers in percent.", ""]
        md += [markdown_table(runs), "", "## Per tool", "", per_tool_table(runs), ""]
        errors = [(label, m["error"]) for label, m in runs if m.get("error")] + list(failed)
        if errors:
            md += ["## Errors (finished records are kept; rerun to resume)", ""]
            md += [f"- **{label}**: {err}" for label, err in errors] + [""]
        bar_chart(runs, out / "report.png")
        md += ["![metrics](report.png)", ""]
    else:
        md += ["No run produced metrics.", ""]
        md += [f"- **{label}**: {err}" for label, err in failed] + ([""] if failed else [])
        (out / "report.png").unlink(missing_ok=True)  # a chart of an earlier report would contradict this one
    if notes:
        md += ["## Not shown: runs in this folder on another annotation file", ""]
        md += [f"- {note}" for note in notes] + [""]
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
