#!/usr/bin/env bash
# The device steps of the embedded adapter (issue 7), one command per `run` call:
#   part1   carry .carry_a (first half of the SmolLM2 GGUF) + .whl_efe: copy the half to /root, check the
#           environment (versions, GPU, our imports)
#   part2   carry .carry_b (second half) + .whl_efe, within 30 s of part1 on the same warm machine: join,
#           check sha256, generate the data, train, copy the adapter to $OUT, evaluate on our splits
#   eval    evaluate (more) of the trained adapter and of the base model, same machine
#   bench   training throughput: padding-free vs padded to 2048, same model and data
# Environment knobs: EPISODES, EPOCHS, LR, R, ALPHA, MICRO, BATCH, TRAIN_TIMEOUT, EVAL_LIMIT.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export TOKENIZERS_PARALLELISM=true HF_HUB_OFFLINE=1
W=/root/efe
GGUF=$W/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
OUT=${OUT:-/tmp/out}
mkdir -p "$W" "$OUT"

setup_python() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_efe/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
  # finetune/ and evaluation/ are installed as efe_langchain.finetune / .evaluation; here, link them.
  ln -sfn ../finetune efe_langchain/finetune
  ln -sfn ../evaluation efe_langchain/evaluation
}

case "${1:-}" in
part1)
  cp .carry_a/part_00 "$W/" && ls -la "$W"
  setup_python
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 - <<'PY'
import sys, torch, transformers, peft, accelerate, gguf
print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "accelerate", accelerate.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import efe_langchain.finetune.train, efe_langchain.finetune.adapter_eval, efe_langchain.evaluation.run
from efe_langchain.finetune.offline_data import generate_samples
print("samples", len(generate_samples(50)))
try:
    import flash_attn; print("flash_attn", flash_attn.__version__)
except ImportError:
    print("no flash_attn")
PY
  ;;
part2)
  cp .carry_b/part_01 "$W/"
  cat "$W/part_00" "$W/part_01" > "$GGUF"
  echo "$SHA  $GGUF" | sha256sum -c - || exit 4
  setup_python
  python3 - <<PY || exit 5
import json
from efe_langchain.finetune.offline_data import generate_samples
s = generate_samples(${EPISODES:-20000}, seed=0)
json.dump(s, open("$W/train.json", "w"))
print("train samples", len(s))
PY
  timeout ${TRAIN_TIMEOUT:-330} python3 -m efe_langchain.finetune.train --base_model "$GGUF" --data_path "$W/train.json" \
    --output_dir "$W/adapter" --num_epochs ${EPOCHS:-1} --batch_size ${BATCH:-64} --micro_batch_size ${MICRO:-32} \
    --learning_rate ${LR:-5e-4} --lora_r ${R:-32} --lora_alpha ${ALPHA:-32} --lora_target_modules all-linear \
    --group_by_length --cutoff_len 2048 --save_steps 100 --save_total_limit 1 --save_dtype fp16 --logging_steps 10 --quiet \
    2>&1 | grep -v Warning | tee "$OUT/train.log"
  A="$W/adapter"
  if [ ! -f "$A/adapter_model.safetensors" ]; then
    A=$(ls -d $W/adapter/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1); echo "training cut short: using $A"
  fi
  echo "$A" > "$W/adapter_path"
  # Files come back only under 16 MiB each: the fp16 adapter (~19 MB) travels in two pieces.
  mkdir -p "$OUT/adapter"
  cp "$A"/adapter_config.json "$OUT/adapter/"
  split -b 15000000 -d "$A"/adapter_model.safetensors "$OUT/adapter/adapter_model.safetensors.part_"
  sha256sum "$A"/adapter_model.safetensors | tee "$OUT/adapter/sha256.txt"
  cp "$W"/adapter/train_summary.json "$W"/adapter/loss.png "$OUT/" 2>/dev/null
  timeout ${EVAL_TIMEOUT:-90} python3 -m efe_langchain.finetune.adapter_eval --base "$GGUF" --adapter "$A" \
    --split evaluation/data/val_handwritten.json evaluation/data/test_unseen.json evaluation/data/val_generated.json \
    --out "$W/eval" --decoding free --batch_size 64 2>&1 | grep "^\[" | tee "$OUT/eval_adapter_free.log"
  timeout ${EVAL2_TIMEOUT:-100} python3 -m efe_langchain.finetune.adapter_eval --base "$GGUF" --adapter "$A" \
    --split evaluation/data/val_handwritten.json evaluation/data/test_unseen.json evaluation/data/val_generated.json \
    --out "$W/eval" --decoding constrained 2>&1 | grep "^\[" | tee "$OUT/eval_adapter_constrained.log"
  ;;
eval)
  setup_python
  A=$(cat "$W/adapter_path")
  timeout ${EVAL_TIMEOUT:-240} python3 -m efe_langchain.finetune.adapter_eval --base "$GGUF" --adapter "$A" \
    --split evaluation/data/val_handwritten.json evaluation/data/test_unseen.json evaluation/data/val_generated.json \
    --out "$W/eval" --decoding constrained --limit ${EVAL_LIMIT:-200} 2>&1 | grep "^\[" | tee "$OUT/eval_adapter_constrained.log"
  timeout ${EVAL_TIMEOUT:-240} python3 -m efe_langchain.finetune.adapter_eval --base "$GGUF" \
    --split evaluation/data/val_handwritten.json evaluation/data/test_unseen.json evaluation/data/val_generated.json \
    --out "$W/eval" --decoding ${BASE_DECODING:-free} --limit ${EVAL_LIMIT:-200} --batch_size 64 2>&1 | grep "^\[" | tee "$OUT/eval_base.log"
  cp "$W"/eval/summary_*.json "$OUT/" 2>/dev/null
  ;;
g1)  # GGUF in three parts when an adapter (.carry_ad) must travel too: carry .carry_g1 .carry_ad .whl_efe
  cp .carry_g1/g_00 "$W/" && mkdir -p "$W/ad" && cp .carry_ad/* "$W/ad/" && echo "$W/ad" > "$W/adapter_path" && ls -la "$W" "$W/ad"
  ;;
g2)  # within 30 s of g1: carry .carry_g2
  cp .carry_g2/g_01 "$W/" && ls -la "$W"
  ;;
g3)  # within 30 s of g2: carry .carry_g3 .whl_efe; join, check, evaluate adapter and base
  cp .carry_g3/g_02 "$W/"
  cat "$W/g_00" "$W/g_01" "$W/g_02" > "$GGUF"
  echo "$SHA  $GGUF" | sha256sum -c - || exit 4
  setup_python
  A=$(cat "$W/adapter_path")
  S="evaluation/data/val_handwritten.json evaluation/data/test_unseen.json evaluation/data/val_generated.json"
  stage() {  # timeout args...: one evaluation, then everything so far is packed into $OUT
    local t=$1; shift
    timeout "$t" python3 -m efe_langchain.finetune.adapter_eval --base "$GGUF" --split $S --out "$W/eval" "$@" \
      >> "$OUT/eval_full.log" 2>&1
    grep -a -E "^\[(adapter|base)\]" "$OUT/eval_full.log" > "$OUT/eval.log"
    tar czf "$OUT/eval.tgz" -C "$W" eval 2>/dev/null
  }
  stage ${T1:-130} --adapter "$A" --label adapter --decoding constrained --limit ${CLIMIT:-150}
  stage ${T2:-90} --adapter "$A" --label adapter --decoding free --batch_size 64
  stage ${T3:-60} --label base --decoding constrained --limit ${BLIMIT:-100}
  stage ${T4:-50} --label base --decoding free --batch_size 64 --limit ${BLIMIT:-100} --max_new_tokens 64
  cat "$OUT/eval.log"
  ;;
bench)
  setup_python
  python3 benchmarks/bench_train.py --base_model "$GGUF" --data "$W/train.json" --out "$OUT/bench_train.json" ${BENCH_ARGS:-}
  ;;
*)
  echo "usage: $0 part1|part2|eval|bench"; exit 2 ;;
esac
