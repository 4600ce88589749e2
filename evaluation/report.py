"""The comparison report: models side by side as a Markdown table and a bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

__all__ = ["markdown_table", "per_tool_table", "write_report", "bar_chart"]

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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(out: str | Path, runs: Sequence[tuple[str, dict]], failed: Sequence[tuple[str, str]] = ()) -> Path:
    """``report.md`` and ``report.png`` in ``out``; returns the Markdown path.

    ``failed``: (label, error) of models that produced nothing (no key, weights missing).
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
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
