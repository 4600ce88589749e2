"""``finetune/adapter_eval.py``: the GPU-side scorer. Ranks split the records and rank 0 merges,
so a sharded run scores exactly what a single process scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from efe_langchain.evaluation.sample import sample_eval_path


def _run(args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    env = dict(os.environ, **env_extra, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-m", "efe_langchain.finetune.adapter_eval", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_ranks_score_what_one_process_scores(tmp_path: Path, tiny_model_dir):
    common = ["--base", str(tiny_model_dir), "--split", str(sample_eval_path()), "--decoding", "both", "--limit", "6",
              "--max_new_tokens", "12", "--batch_size", "4", "--device", "cpu"]

    single = _run([*common, "--out", str(tmp_path / "one")], {"WORLD_SIZE": "1", "RANK": "0"})
    assert single.wait(timeout=300) == 0, single.stdout.read()
    ranks = [_run([*common, "--out", str(tmp_path / "two")], {"WORLD_SIZE": "2", "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in (1, 0)]
    for p in ranks:
        assert p.wait(timeout=300) == 0, p.stdout.read()

    name = Path(sample_eval_path()).stem
    one = json.loads((tmp_path / "one" / "summary_base.json").read_text())[name]
    two = json.loads((tmp_path / "two" / "summary_base.json").read_text())[name]
    for dec in ("free", "constrained"):
        assert one[dec]["n"] == two[dec]["n"] == 6
        for key in ("SR_t", "SR_act", "SR_args", "SR"):
            assert one[dec][key] == two[dec][key], (dec, key)
        preds = {p["id"]: p["output"] for p in json.loads((tmp_path / "two" / f"base@{dec}" / name / "predictions.json").read_text())}
        ref = {p["id"]: p["output"] for p in json.loads((tmp_path / "one" / f"base@{dec}" / name / "predictions.json").read_text())}
        assert preds == ref and len(preds) == 6


def test_summary_report_tables_every_label(tmp_path: Path):
    from efe_langchain.finetune.adapter_eval import main

    row = {"n": 10, "SR_t": 90.0, "SR_act": 80.0, "SR_args": 70.0, "SR": 60.0, "IoU": 50.0, "strict": 40.0}
    (tmp_path / "summary_new.json").write_text(json.dumps({"val_handwritten": {"constrained": row, "free": row}}))
    (tmp_path / "summary_base.json").write_text(json.dumps({"val_handwritten": {"constrained": dict(row, SR=0.0)}}))
    assert main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "summary.md").read_text()
    assert "| new | val_handwritten | 10 | 90.0 | 80.0 | 70.0 | 60.0 | 40.0 |" in md
    assert "| base | val_handwritten | 10 | 90.0 | 80.0 | 70.0 | 0.0 | 40.0 |" in md
    assert md.index("## constrained") < md.index("| base |") < md.index("## free")
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
