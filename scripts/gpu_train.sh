#!/usr/bin/env bash
# The device steps of the embedded adapter (issue 7) and the GPU measures (issues 4 and 7), one command
# per `run` call, all on one warm machine (each call within 30 s of the last):
#   g1      carry .carry_g1: first third of the SmolLM2 GGUF to /root/efe (the tree itself takes ~25 MB
#           of the 64 MiB a call carries, so the 98 MB file travels in three calls)
#   g2      carry .carry_g2: second third
#   train   carry .carry_g3 .whl_efe: join and check the GGUF, generate the offline data, LoRA-train on
#           every GPU (torchrun), send the adapter back in pieces under $OUT/adapter
#   resume  carry .whl_efe: go on from the last checkpoint of a train call that hit TRAIN_TIMEOUT
#   bench   carry .whl_efe: training throughput (padded to 2048 / length-grouped / packed, one GPU; then
#           the same command on 1, 2 and 4 GPUs)
#   beval   carry .whl_efe: evaluation throughput on the GPU, batched against batch size 1
#   eval    carry .whl_efe: every split, free and constrained, for the new adapter, the shipped one and
#           the base model, RANKS processes spread over the GPUs
#   geval   carry .carry_g3 .whl_efe: a fresh machine after g1, g2: join the GGUF, then eval (MODELS=shipped)
# Knobs: EPISODES, SEED, RENAME_REAL (chance that a listed real tool gets a fresh name for the episode; default 0),
# INIT (an adapter folder to go on training, e.g. efe_langchain/adapters/smollm2-135m-efe; default: a fresh LoRA),
# ORDERS (tool orders of constrained decoding in eval; default 3, the package default), GATE (eval's --order_confidence;
# labels the run adapter_gate<GATE>), DECODINGS (eval: both, free or constrained), SPLITS (eval: the split files), GATE_SWEEP (eval: also run
# benchmarks/bench_order_gate.py on the new adapter), EPOCHS, LR, R, ALPHA, MICRO, BATCH, SAVE_STEPS, TRAIN_TIMEOUT, EREC, EBATCH, RANKS, EVAL_TIMEOUT, MODELS.
# Prepare the carried folders here with `scripts/gpu_train.sh prepare`.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
W=/root/efe
GGUF=$W/SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
OUT=${OUT:-/tmp/out}
SPLITS=${SPLITS:-"evaluation/data/val_handwritten.json evaluation/data/test_unseen.json evaluation/data/val_generated.json"}
mkdir -p "$W" "$OUT"

setup_python() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl_efe/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
  # finetune/ and evaluation/ are installed as efe_langchain.finetune / .evaluation; here, link them.
  ln -sfn ../finetune efe_langchain/finetune
  ln -sfn ../evaluation efe_langchain/evaluation
}
join_gguf() {  # the last third (carried in .carry_g3) joined to the two that g1 and g2 left, and checked
  cp .carry_g3/g_02 "$W/"
  cat "$W/g_00" "$W/g_01" "$W/g_02" > "$GGUF"
  echo "$SHA  $GGUF" | sha256sum -c - || exit 4
}
ngpu() { nvidia-smi --query-gpu=name --format=csv,noheader | wc -l; }

train_lora() {  # extra trainer args...; then the adapter goes back in pieces under $OUT/adapter
  local N; N=$(ngpu)
  local init=(); [ -n "${INIT:-}" ] && init=(--init_adapter "$INIT")
  timeout ${TRAIN_TIMEOUT:-420} torchrun --standalone --nproc_per_node "$N" -m efe_langchain.finetune.train \
    --base_model "$GGUF" --data_path "$W/train.json" --output_dir "$W/adapter" --num_epochs ${EPOCHS:-1} \
    --batch_size ${BATCH:-128} --micro_batch_size ${MICRO:-32} --learning_rate ${LR:-5e-4} --lora_r ${R:-32} \
    --lora_alpha ${ALPHA:-32} --lora_target_modules all-linear --group_by_length --cutoff_len 2048 \
    --save_steps ${SAVE_STEPS:-50} --save_total_limit 1 --save_dtype fp16 --logging_steps 10 --quiet "${init[@]}" "$@" \
    2>&1 | grep -v Warning | tee -a "$OUT/train.log"
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
}

case "${1:-}" in
prepare)  # here, before the calls: the three thirds of the GGUF and the wheels the machine lacks
  src=$(.venv/bin/python -c "from efe_langchain.embedded import smollm2_gguf_path as p; print(p())")
  for i in 1 2 3; do mkdir -p .carry_g$i; done
  tmp=$(mktemp -d) && split -b 33000000 -d -a 2 "$src" "$tmp/g_"
  mv "$tmp/g_00" .carry_g1/ && mv "$tmp/g_01" .carry_g2/ && mv "$tmp/g_02" .carry_g3/
  ls .whl_efe/gguf-*.whl .whl_efe/peft-*.whl
  ;;
g1) cp .carry_g1/g_00 "$W/" && ls -la "$W" && nvidia-smi --query-gpu=name,memory.total --format=csv ;;
g2) cp .carry_g2/g_01 "$W/" && ls -la "$W" ;;
train)
  join_gguf
  setup_python
  python3 - <<PY || exit 5
import collections, json
from efe_langchain.finetune.offline_data import generate_samples
s = generate_samples(${EPISODES:-46000}, seed=${SEED:-0}, rename_real_prob=${RENAME_REAL:-0})
json.dump(s, open("$W/train.json", "w"))
print("train samples", len(s), dict(collections.Counter(x["kind"] for x in s).most_common()))
PY
  train_lora
  ;;
resume)  # the same machine, after a train call that ran out of time: go on from the last checkpoint
  setup_python
  train_lora --resume_from_checkpoint auto
  ;;
beval)  # evaluation throughput on the GPU (issue 4): batched against batch size 1, same records
  setup_python
  A=$(cat "$W/adapter_path" 2>/dev/null || echo efe_langchain/adapters/smollm2-135m-efe)
  python3 benchmarks/bench_eval.py --base "$GGUF" --adapter "$A" --device cuda --annotations evaluation/data/val_generated.json \
    --records ${EREC:-64} --batch-size ${EBATCH:-32} --max-new-tokens 64 2>&1 | grep -v Warning | tee "$OUT/bench_eval_gpu.txt" | tail -15
  ;;
gbench)  # a fresh machine after g1, g2: carry .carry_g3 .whl_efe; join, then only the batching-modes benchmark
  join_gguf
  setup_python
  python3 -c "
import json
from efe_langchain.finetune.offline_data import generate_samples
json.dump(generate_samples(6000, seed=0), open('$W/train.json', 'w'))"
  python3 benchmarks/bench_train.py --base_model $GGUF --data $W/train.json --micro_batch_size 16 --samples 6000 \
    --steps ${BSTEPS:-12} --out "$OUT/bench_train_modes.json" 2>&1 | grep -v -E "Warning|GGUF tensors|Loading weights" | tail -60
  ;;
bench)
  setup_python
  B="python3 benchmarks/bench_train.py --base_model $GGUF --data $W/train.json --micro_batch_size 16 --samples 6000"
  $B --steps ${BSTEPS:-12} --out "$OUT/bench_train_modes.json" 2>&1 | grep -v Warning | tail -40
  for n in 1 2 4; do
    [ "$n" -le "$(ngpu)" ] || continue
    torchrun --standalone --nproc_per_node $n benchmarks/bench_train.py --base_model $GGUF --data $W/train.json \
      --micro_batch_size 16 --samples 12000 --modes grouped --steps ${SSTEPS:-40} --out "$OUT/bench_train_gpus$n.json" \
      2>&1 | grep -v Warning | tail -25
  done
  ;;
geval|eval)  # geval: a fresh machine after g1, g2 (carry .carry_g3 .whl_efe); join, then eval
  [ "$1" = geval ] && join_gguf
  setup_python
  N=$(ngpu); R=${RANKS:-$((N * 3))}
  A=$(cat "$W/adapter_path" 2>/dev/null || echo efe_langchain/adapters/smollm2-135m-efe)
  run_eval() {  # label adapter-or-none decoding extra-args...
    local label=$1 ad=$2 dec=$3; shift 3
    local adarg=(); [ "$ad" != none ] && adarg=(--adapter "$ad")
    timeout ${EVAL_TIMEOUT:-200} torchrun --standalone --nproc_per_node "$R" -m efe_langchain.finetune.adapter_eval \
      --base "$GGUF" "${adarg[@]}" --label "$label" --split $SPLITS --out "$W/eval" --decoding "$dec" --tool_orders ${ORDERS:-3} \
      --order_confidence ${GATE:-0} "$@" \
      2>&1 | grep -a -E "^\[|Error|error" | tee -a "$OUT/eval.log"
    tar czf "$OUT/eval.tgz" -C "$W" eval 2>/dev/null
  }
  # One launch per model (both decodings): each launch costs ~20 s of model loading on every rank.
  for m in ${MODELS:-new shipped base}; do
    case $m in
      new)     run_eval "adapter${GATE:+_gate$GATE}" "$A" ${DECODINGS:-both} --batch_size 32 ;;
      shipped) run_eval shipped efe_langchain/adapters/smollm2-135m-efe ${DECODINGS:-both} --batch_size 32 ;;
      base)    run_eval base none ${DECODINGS:-both} --batch_size 32 --max_new_tokens 64 ;;
    esac
  done
  cp "$W"/eval/summary_*.json "$OUT/" 2>/dev/null
  if [ -n "${GATE_SWEEP:-}" ]; then  # first tool choices under every order gate (benchmarks/bench_order_gate.py)
    python3 benchmarks/bench_order_gate.py --base "$GGUF" --adapter "$A" --device cuda --orders ${ORDERS:-3} \
      --out "$OUT/order_gate_h200" 2>&1 | grep -v -E "Warning|it/s\]|s/it\]" | tail -20
  fi
  ;;
*)
  echo "usage: $0 prepare|g1|g2|train|resume|bench|beval|gbench|eval|geval"; exit 2 ;;
esac
