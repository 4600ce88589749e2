"""``finetune/adapter_eval.py``: the GPU-side scorer. Ranks split the records and rank 0 merges,
so a sharded run scores exactly what a single process scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import build_tiny_lm

from efe_langchain.evaluation.sample import sample_eval_path


def _run(args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    env = dict(os.environ, **env_extra, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-m", "efe_langchain.finetune.adapter_eval", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_ranks_score_what_one_process_scores(tmp_path: Path, smollm2_tokenizer):
    model = build_tiny_lm(smollm2_tokenizer, seed=3)
    model_dir = tmp_path / "tiny"
    model.save_pretrained(model_dir)
    smollm2_tokenizer.save_pretrained(model_dir)
    common = ["--base", str(model_dir), "--split", str(sample_eval_path()), "--decoding", "both", "--limit", "6",
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
