"""Evaluation harness: annotation files, rollouts, resume, sharding, OpenAI runners, reports, CLI."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from efe_langchain.evaluation.records import (
    AnnotationError,
    load_records,
    prompt_images,
    prompt_tools,
    reference_observations,
    split_instruction,
)
from efe_langchain.evaluation.run import (
    PredictionStore,
    evaluate_runner,
    parse_model_spec,
    run_evaluation,
    shard,
)
from efe_langchain.evaluation.runners import LocalRunner, RolloutState, tool_call_to_react, openai_tool_schema
from efe_langchain.evaluation.sample import build_sample_records, sample_eval_path


@pytest.fixture(scope="module")
def records():
    return load_records(sample_eval_path())


# ---- annotation files ------------------------------------------------------------------------------
def test_shipped_sample_is_current_and_varied(records):
    assert json.loads(sample_eval_path().read_text()) == build_sample_records()
    assert len(records) >= 40
    kinds = {"tool": 0, "chain": 0, "no_tool": 0, "continued": 0}
    for r in records:
        n = len(reference_observations(r.output))
        kinds["no_tool" if n == 0 else "chain" if n > 1 else "tool"] += 1
        kinds["continued"] += bool(r.extra["finished_previously"])
    assert all(v >= 3 for v in kinds.values()), kinds


def test_prompt_introspection(records):
    rec = next(r for r in records if r.extra["finished_previously"])
    tools = {t.name: t for t in prompt_tools(rec.instruction)}
    assert set(rec.extra["Action"]) <= set(tools)
    assert tools["Generate Image Condition On Depth"].n_args == 2 if "Generate Image Condition On Depth" in tools else True
    parts = split_instruction(rec.instruction)
    assert parts.input == rec.extra["user_input"]
    assert parts.scratchpad.startswith("Thought: Do I need to use a tool? Yes\nAction: ")
    # the upload and the earlier step's output are both images the next step may use
    assert prompt_images(rec.instruction)[0] == rec.extra["filename"]
    assert len(prompt_images(rec.instruction)) == 2
    replace = next(r for r in records if "Replace Something From The Photo" in r.extra["Action"])
    spec = {t.name: t for t in prompt_tools(replace.instruction)}["Replace Something From The Photo"]
    assert (spec.n_args, spec.takes_image) == (3, True)
    text = next(r for r in records if r.extra["Action"] == ["Generate Image From User Input Text"])
    assert {t.name: t for t in prompt_tools(text.instruction)}["Generate Image From User Input Text"].takes_image is False


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"id": 1}', "expected a JSON list"),
        ("[]", "holds no records"),
        ('[{"instruction": "x", "output": "Thought: Do I need to use a tool? No\\nAI: y"}]', "missing field 'id'"),
        ('[{"id": true, "instruction": "x", "output": "Thought: Do I need to use a tool? No\\nAI: y"}]', "'id' must be int or str"),
        ('[{"id": 1, "instruction": "x", "output": "AI: y"}]', "no 'Thought: Do I need to use a tool\\?'"),
        ('[{"id": 1, "instruction": "x", "output": "Thought: Do I need to use a tool? Yes\\nAction: A\\n"}]', "pair every 'Action:'"),
        ('[{"id": 1, "instruction": "x", "output": "Thought: Do I need to use a tool? No\\nAI: y"},'
         ' {"id": 1, "instruction": "x", "output": "Thought: Do I need to use a tool? No\\nAI: y"}]', "duplicate id"),
    ],
)
def test_malformed_annotation_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=message) as info:
        load_records(path)
    assert str(path) in str(info.value)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    from efe_langchain.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1}]')
    assert main(["eval", "--annotations", str(bad), "--model", "reference", "--out", str(tmp_path / "o")]) == 2
    assert "missing field 'instruction'" in capsys.readouterr().err
    assert main(["eval", "--model", "gpt-4", "--out", str(tmp_path / "o")]) == 2
    assert "unknown model 'gpt-4'" in capsys.readouterr().err


def test_model_specs(tmp_path):
    assert parse_model_spec("embedded").embedded_adapter == "default"
    assert parse_model_spec("embedded:noadapter").embedded_adapter is None
    assert parse_model_spec("openai:gpt-3.5-turbo-instruct").kind == "openai-completions"
    assert parse_model_spec("openai:gpt-4o-mini").kind == "openai-chat"
    assert parse_model_spec("openai-tools:gpt-4o-mini").kind == "openai-tools"
    (tmp_path / "base").mkdir()
    (tmp_path / "lora").mkdir()
    spec = parse_model_spec(f"{tmp_path}/base+{tmp_path}/lora")
    assert (spec.kind, spec.name, spec.adapters) == ("local", f"{tmp_path}/base", (f"{tmp_path}/lora",))
    assert parse_model_spec("HuggingFaceTB/SmolLM2-135M-Instruct+someone/lora").adapters == ("someone/lora",)
    with pytest.raises(ValueError, match="does not exist"):
        parse_model_spec(f"{tmp_path}/base+{tmp_path}/missing")
    with pytest.raises(ValueError, match="unknown model"):
        parse_model_spec("embedded:large")


# ---- the oracle and the reports ------------------------------------------------------------------------
def test_reference_oracle_scores_100_and_writes_every_file(tmp_path):
    results = run_evaluation(sample_eval_path(), ["reference"], tmp_path, progress=False)
    m = results[0].metrics
    assert m["complete"] and m["n_scored"] == 41
    assert all(m["overall"][k] == pytest.approx(100.0, abs=1e-6) for k in ("SR_t", "SR_act", "SR_args", "SR", "strict", "IoU"))
    assert "(no tool)" in m["per_tool"] and m["per_tool"]["Predict Depth On Image"]["n"] >= 2
    preds = json.loads((tmp_path / "reference" / "predictions.json").read_text())
    assert set(preds[0]) == {"id", "output"}
    md = (tmp_path / "report.md").read_text()
    assert "| SR (GPT4Tools) | 100.0 |" in md and "strict SR" in md
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- local runner: rollout, resume, sharding -----------------------------------------------------------
def test_constrained_rollout_on_a_chain_follows_the_protocol(tiny_llm, records):
    rec = next(r for r in records if len(reference_observations(r.output)) == 2 and not r.extra["finished_previously"])
    state = RolloutState(rec)
    from efe_langchain.evaluation.run import rollout

    rollout(LocalRunner(tiny_llm, decoding="constrained", max_new_tokens=8), [state])
    listed = {t.name for t in prompt_tools(rec.instruction)}
    assert state.done and 1 <= state.usage["calls"] <= 3
    # tokens processed are counted for local runs too (the prompt alone is several hundred)
    assert state.usage["prompt_tokens"] > 300 * state.usage["calls"]
    for tool, tool_input, obs in state.steps:
        assert tool in listed
    # every tool call is followed by the reference's observation for that step, as the reference writes it
    ref_obs = [o.strip() for o in reference_observations(rec.output)]
    for i, (_, _, obs) in enumerate(state.steps):
        assert obs == (ref_obs[i] if i < len(ref_obs) else "[output]")
        assert f"\nObservation:\n{obs}\n" in state.output
    assert state.output.startswith("Thought: Do I need to use a tool?")


def test_local_run_resumes_and_survives_a_torn_line(tiny_llm, records, tmp_path):
    subset = records[:4]
    runner = LocalRunner(tiny_llm, decoding="free", batch_size=2, max_new_tokens=6)
    first = evaluate_runner(runner, subset, tmp_path, progress=False)
    assert first["new_records"] == 4
    stored = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(stored) == 4
    again = evaluate_runner(runner, subset, tmp_path, progress=False)
    assert again["new_records"] == 0
    # a crash in the middle of writing the last record: the torn line is skipped and redone
    (tmp_path / "predictions.jsonl").write_text("\n".join(stored[:3]) + "\n" + stored[3][:20])
    third = evaluate_runner(runner, subset, tmp_path, progress=False)
    assert third["new_records"] == 1
    merged = json.loads((tmp_path / "predictions.json").read_text())
    assert [p["id"] for p in merged] == [r.id for r in subset]
    assert {p["id"]: p["output"] for p in merged} == {json.loads(s)["id"]: json.loads(s)["output"] for s in stored}


def test_sharding_with_simulated_world_size(tiny_llm, records, tmp_path):
    subset = records[:5]
    assert [r.id for r in shard(subset, 1, 2)] == [subset[1].id, subset[3].id]
    runner = LocalRunner(tiny_llm, decoding="constrained", batch_size=2, max_new_tokens=6)
    single = evaluate_runner(runner, subset, tmp_path / "single", progress=False)["predictions"]
    # rank 1 finishes first, then rank 0 does its share, waits for everything and merges
    rank1 = evaluate_runner(runner, subset, tmp_path / "sharded", rank=1, world_size=2, progress=False)
    assert rank1["new_records"] == 2 and rank1["predictions"] == {}
    rank0 = evaluate_runner(runner, subset, tmp_path / "sharded", rank=0, world_size=2, progress=False, merge_timeout=5)
    assert rank0["new_records"] == 3
    shards = sorted(p.name for p in (tmp_path / "sharded").glob("predictions*.jsonl"))
    assert shards == ["predictions.rank0-of-2.jsonl", "predictions.rank1-of-2.jsonl"]
    ids1 = [json.loads(line)["id"] for line in (tmp_path / "sharded" / shards[1]).read_text().splitlines()]
    assert ids1 == [subset[1].id, subset[3].id]
    merged = json.loads((tmp_path / "sharded" / "predictions.json").read_text())
    assert {p["id"]: p["output"] for p in merged} == {v["id"]: v["output"] for v in single.values()}


def test_rank0_reports_missing_shards(tiny_llm, records, tmp_path):
    from efe_langchain.evaluation.runners import RunnerError

    runner = LocalRunner(tiny_llm, decoding="constrained", max_new_tokens=4)
    with pytest.raises(RunnerError, match="still missing"):
        evaluate_runner(runner, records[:2], tmp_path, rank=0, world_size=2, progress=False, merge_timeout=0.5)
    assert len(PredictionStore(tmp_path).load()) == 1  # its own share is kept


# ---- OpenAI runners against a scripted HTTP server (stands in for an unreachable API) ---------------
class _Scripted:
    """A local HTTP server speaking just enough of the OpenAI protocol; ``behave(n)`` decides each reply."""

    def __init__(self, behave):
        outer = self
        self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                status, payload, ctype, delay = behave(len(outer.requests), body)
                time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text="Thought: Do I need to use a tool? No\nAI: fine"):
    return {"id": "x", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"text": text, "index": 0, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


OPTS = {"api_key": "k", "concurrency": 1, "max_retries": 1, "backoff": 0.01, "timeout": 5}


def test_server_failure_keeps_finished_work_and_resume_finishes(records, tmp_path):
    healthy = {"on": True}

    def behave(n, body):
        if n <= 2 or healthy["on"] is None:
            return 200, _completion(), "application/json", 0
        return 503, {"error": {"message": "overloaded"}}, "application/json", 0

    srv = _Scripted(behave)
    try:
        opts = dict(OPTS, base_url=srv.url)
        res = run_evaluation(sample_eval_path(), ["openai:gpt-3.5-turbo-instruct"], tmp_path, limit=5,
                             progress=False, openai_options=opts)[0]
        assert "503" in res.error and "after 2 attempt(s)" in res.error
        assert res.metrics["n_scored"] == 2 and not res.metrics["complete"]
        assert res.metrics["usage"]["prompt_tokens"] == 200
        assert res.metrics["usage"]["cost_usd"] == pytest.approx((200 * 1.5 + 20 * 2.0) / 1e6)
        healthy["on"] = None
        sent = len(srv.requests)
        res = run_evaluation(sample_eval_path(), ["openai:gpt-3.5-turbo-instruct"], tmp_path, limit=5,
                             progress=False, openai_options=opts)[0]
        assert res.error is None and res.metrics["complete"]
        assert len(srv.requests) - sent == 3  # only the records that were missing
        assert srv.requests[0]["stop"] == ["\nObservation:", "\n\tObservation:", "\nHuman:", "\nNew input:"]
        assert srv.requests[0]["prompt"] == records[0].instruction
    finally:
        srv.close()


def test_rate_limit_is_retried_with_backoff(tmp_path):
    def behave(n, body):
        if n == 1:
            return 429, {"error": {"message": "slow down"}}, "application/json", 0
        return 200, _completion(), "application/json", 0

    srv = _Scripted(behave)
    try:
        res = run_evaluation(sample_eval_path(), ["openai:gpt-3.5-turbo-instruct"], tmp_path, limit=1,
                             progress=False, openai_options=dict(OPTS, base_url=srv.url))[0]
        assert res.error is None and len(srv.requests) == 2
    finally:
        srv.close()


@pytest.mark.parametrize(
    "payload, ctype, delay, message",
    [
        (b"<html>hello</html>", "text/html", 0, "not an OpenAI completion"),
        ({"unexpected": True}, "application/json", 0, "not an OpenAI completion"),
        (_completion(), "application/json", 3, "APITimeoutError"),
    ],
)
def test_garbage_or_timeout_gives_clear_error(tmp_path, payload, ctype, delay, message):
    srv = _Scripted(lambda n, body: (200, payload, ctype, delay))
    try:
        res = run_evaluation(sample_eval_path(), ["openai:gpt-3.5-turbo-instruct"], tmp_path, limit=2, progress=False,
                             openai_options=dict(OPTS, base_url=srv.url, timeout=1, max_retries=0))[0]
        assert message in res.error and srv.url in res.error
        assert res.metrics["n_scored"] == 0
    finally:
        srv.close()


def test_native_tool_calls_become_react_text(records):
    rec = next(r for r in records if "Replace Something From The Photo" in r.extra["Action"])
    spec = {t.name: t for t in prompt_tools(rec.instruction)}["Replace Something From The Photo"]
    schema = openai_tool_schema(spec)
    assert schema["function"]["name"] == "replace_something_from_the_photo"
    props = list(schema["function"]["parameters"]["properties"])
    assert props == ["image_path", "object_to_be_replaced", "object_to_be_replaced_with"]
    args = json.dumps({"object_to_be_replaced": "apple", "image_path": "image/a.png", "object_to_be_replaced_with": "orange"})
    assert tool_call_to_react(spec, schema["function"]["name"], args) == (
        "Thought: Do I need to use a tool? Yes\nAction: Replace Something From The Photo\n"
        "Action Input: image/a.png, apple, orange"
    )
    # malformed JSON arguments are scored as written, not dropped
    assert tool_call_to_react(spec, "x", "{oops").endswith("Action Input: {oops")


def test_parameters_a_newer_model_refuses_are_adapted_once(tmp_path):
    def behave(n, body):
        if "max_tokens" in body:
            return 400, {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                              "Use 'max_completion_tokens' instead.",
                                   "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}, "application/json", 0
        return 200, {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "Thought: Do I need to use a tool? No\nAI: ok"}}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}, "application/json", 0

    srv = _Scripted(behave)
    try:
        res = run_evaluation(sample_eval_path(), ["openai:o4-mini"], tmp_path, limit=2, progress=False,
                             openai_options=dict(OPTS, base_url=srv.url))[0]
        assert res.error is None and res.metrics["n_scored"] == 2
        # one refusal, then every request uses max_completion_tokens
        assert ["max_tokens" in r for r in srv.requests] == [True, False, False]
        assert all("max_completion_tokens" in r for r in srv.requests[1:])
    finally:
        srv.close()


# ---- one output folder, several invocations: the report keeps every stored run -----------------------
def _report_columns(out):
    head = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| metric |"))
    return [c.strip() for c in head.strip("|").split("|")][1:]


def _chart_models(out):
    from PIL import Image

    with Image.open(out / "report.png") as png:
        return png.text["Models"].splitlines()


def test_report_keeps_models_of_earlier_invocations(tmp_path):
    srv = _Scripted(lambda n, body: (200, _completion(), "application/json", 0))
    opts = dict(OPTS, base_url=srv.url)
    out = tmp_path / "out"
    try:
        run_evaluation(sample_eval_path(), ["reference"], out, limit=4, progress=False)
        run_evaluation(sample_eval_path(), ["openai-completions:m"], out, limit=4, progress=False, openai_options=opts)
        both = ["reference", "openai-completions_m"]
        assert _report_columns(out) == both and _chart_models(out) == both
        assert "| SR (GPT4Tools) | 100.0 | " in (out / "report.md").read_text()
        # rerunning the first model updates it in place: first seen stays first
        run_evaluation(sample_eval_path(), ["reference"], out, limit=4, progress=False)
        assert _report_columns(out) == both and _chart_models(out) == both

        # a run of another annotation file in the same folder is named, not mixed into the table
        other = tmp_path / "other.json"
        other.write_text(json.dumps(json.loads(sample_eval_path().read_text())[:2]))
        run_evaluation(other, ["openai-completions:other"], out, progress=False, openai_options=opts)
        assert _report_columns(out) == ["openai-completions_other"]
        run_evaluation(sample_eval_path(), ["openai-completions:m"], out, limit=4, progress=False, openai_options=opts)
        md = (out / "report.md").read_text()
        assert _report_columns(out) == both
        assert "Not shown" in md and "openai-completions_other (annotations" in md

        # a damaged stored metrics file is reported, and the rest of the report still comes out
        (out / "reference" / "metrics.json").write_text("{truncated")
        run_evaluation(sample_eval_path(), ["openai-completions:m"], out, limit=4, progress=False, openai_options=opts)
        md = (out / "report.md").read_text()
        assert _report_columns(out) == ["openai-completions_m"] and _chart_models(out) == ["openai-completions_m"]
        assert "- **reference**: stored metrics" in md and "unreadable (JSONDecodeError" in md
    finally:
        srv.close()


def test_tool_orders_reach_the_model_and_name_the_run(tiny_llm, tmp_path):
    """--tool-orders sets the local model's orders; a value other than the default 3 gets its own
    run folder, so a rerun never resumes from predictions another decoder made."""
    assert tiny_llm.tool_orders == 3
    res = run_evaluation(sample_eval_path(), ["embedded"], tmp_path, limit=2, decoding="constrained", tool_orders=1,
                         max_new_tokens=4, progress=False, llm_loader=lambda spec, device: tiny_llm)
    assert [r.label for r in res] == ["embedded@constrained-o1"] and res[0].error is None
    assert tiny_llm.tool_orders == 1 and tiny_llm.decoder.tool_orders == 1  # synced on the first step
    assert (tmp_path / "embedded@constrained-o1" / "predictions.json").is_file()
    with pytest.raises(ValueError, match="tool-orders"):
        run_evaluation(sample_eval_path(), ["embedded"], tmp_path, tool_orders=0, progress=False)


def test_an_order_gate_other_than_the_default_names_its_own_run(tiny_llm, tmp_path):
    from efe_langchain.decoding import DEFAULT_ORDER_CONFIDENCE

    assert tiny_llm.tool_order_confidence == DEFAULT_ORDER_CONFIDENCE
    try:
        res = run_evaluation(sample_eval_path(), ["embedded"], tmp_path, limit=2, decoding="constrained",
                             order_confidence=0.0, max_new_tokens=4, progress=False,
                             llm_loader=lambda spec, device: tiny_llm)
        assert [r.label for r in res] == ["embedded@constrained-g0"] and res[0].error is None
        assert tiny_llm.decoder.order_confidence == 0.0  # synced on the first step
    finally:
        tiny_llm.tool_order_confidence = DEFAULT_ORDER_CONFIDENCE
    with pytest.raises(ValueError, match="order-confidence"):
        run_evaluation(sample_eval_path(), ["embedded"], tmp_path, order_confidence=2.0, progress=False)
