#!/usr/bin/env bash
# The end-to-end demo, on 2 CPU cores in minutes: curate sample text -> train a tokenizer ->
# token shards -> pre-train a tiny model -> LIMA-select SFT data -> SFT -> reward model on
# preference pairs -> best-of-N on-policy pairs from the SFT model, mixed 1:1 with the off-policy
# pairs -> RLHF (RLOO, with InstructGPT's pre-training mix), PPO-ptx and DPO.
#
#   scripts/demo.sh                            # everything, into out/demo (what `make demo` runs)
#   OUT=out/demo2 SHARED=../shared/data scripts/demo.sh   (paths relative to the repository)
#
# Each curate step can be skipped by naming a folder it would have produced (handy while a
# recipe is missing, or to re-train on existing data):
#   TOKENIZER=<HF tokenizer folder> TOKENS=<tokens dataset> SFT_DATA=<chat dataset>
#   PREFS=<preference dataset> scripts/demo.sh
# Every step is resumable: rerunning the script continues or skips finished work.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"  # paths below (OUT, SHARED, dataset folders) are relative to the repository
PYTHON="${PYTHON:-python}"
THRESHER="${THRESHER:-$PYTHON -m curate.cli}"
SHARED="${SHARED:-$HERE/../shared/data}"
OUT="${OUT:-out/demo}"
# One torch thread per process: on a small or shared CPU, contended threads are several times slower.
THREADS="${THREADS:-1}"
TRAIN_COMMON=("trainer.cpu_threads=$THREADS" "log.every=10")

step() { printf '\n== %s\n' "$*"; }

# --- curation: documents, tokenizer, token shards ------------------------------------------
if [[ -z "${TOKENS:-}" ]]; then
  step "curate: clean sample text (tinyshakespeare speeches, Wikipedia articles, C4 pages)"
  $THRESHER curate pipeline=clean \
    "input.paths=[$SHARED/tinyshakespeare,$SHARED/wikipedia_sample,$SHARED/c4_sample]" \
    input.text_unit=paragraph output.dir="$OUT/documents"

  if [[ -z "${TOKENIZER:-}" ]]; then
    step "curate: train a SentencePiece BPE tokenizer (+ its Hugging Face export with a chat template)"
    $THRESHER curate pipeline=train_tokenizer "input.paths=[$OUT/documents]" output.dir="$OUT/tokenizer" \
      stages.train_tokenizer.vocab_size=4000 stages.train_tokenizer.sample_rate=1.0
    TOKENIZER="$OUT/tokenizer/tokenizer"
  fi

  step "curate: tokenize and pack into rows of 256 tokens"
  $THRESHER curate pipeline=tokenize "input.paths=[$OUT/documents]" output.dir="$OUT/tokens" \
    stages.tokenize_pack.tokenizer="$TOKENIZER" stages.tokenize_pack.seq_len=256
  TOKENS="$OUT/tokens"
fi
TOKENIZER_ARG=()
[[ -n "${TOKENIZER:-}" ]] && TOKENIZER_ARG=("tokenizer=$TOKENIZER")

# --- pre-training ----------------------------------------------------------------------------
step "train: pre-train a tiny Llama on the token shards"
$THRESHER train task=pretrain data="$TOKENS" "${TOKENIZER_ARG[@]}" model=tiny output.dir="$OUT/pretrain" \
  trainer.max_steps=300 trainer.micro_batch_size=16 optim.lr=3e-3 optim.warmup_steps=20 \
  checkpoint.every=100 "${TRAIN_COMMON[@]}"

# --- SFT -------------------------------------------------------------------------------------
if [[ -z "${SFT_DATA:-}" ]]; then
  step "curate: LIMA-style selection of SFT conversations"
  $THRESHER curate pipeline=sft_lima "input.paths=[$SHARED/lima]" input.records=lima output.dir="$OUT/sft_data"
  SFT_DATA="$OUT/sft_data"
fi
step "train: supervised fine-tuning (assistant-only loss, packing)"
$THRESHER train task=sft data="$SFT_DATA" model.path="$OUT/pretrain/model" output.dir="$OUT/sft" \
  trainer.max_steps=60 trainer.micro_batch_size=4 task.max_length=512 optim.lr=1e-3 "${TRAIN_COMMON[@]}"

# --- preferences, reward model, RLHF, DPO ------------------------------------------------------
if [[ -z "${PREFS:-}" ]]; then
  step "curate: preference pairs from Anthropic HH-RLHF"
  $THRESHER curate pipeline=preferences "input.paths=[$SHARED/hh_rlhf]" input.records=hh_rlhf \
    output.dir="$OUT/prefs"
  PREFS="$OUT/prefs"
fi
step "train: reward model (from the SFT model, as InstructGPT)"
$THRESHER train task=reward data="$PREFS" model.path="$OUT/sft/model" output.dir="$OUT/reward" \
  trainer.max_steps=40 trainer.micro_batch_size=8 task.max_length=512 optim.lr=1e-4 "${TRAIN_COMMON[@]}"

step "train: RLHF (RLOO against the reward model, with the pre-training mix)"
$THRESHER train task=rlhf data="$PREFS" model.path="$OUT/sft/model" task.reward_model="$OUT/reward/model" \
  output.dir="$OUT/rlhf" trainer.max_steps=10 trainer.micro_batch_size=8 task.num_generations=4 \
  task.max_completion_length=48 optim.lr=1e-5 ptx.data="$TOKENS" ptx.coef=0.5 "${TRAIN_COMMON[@]}"

step "train: PPO-ptx (value head, KL penalty to the SFT model, pre-training mix; alignment tax measured on the token shards)"
$THRESHER train task=ppo data="$PREFS" model.path="$OUT/sft/model" task.reward_model="$OUT/reward/model" \
  output.dir="$OUT/ppo" trainer.max_steps=8 task.rollout_batch_size=16 trainer.micro_batch_size=8 \
  trainer.grad_accum_steps=2 task.max_completion_length=32 task.max_prompt_tokens=256 optim.lr=1e-5 \
  ptx.data="$TOKENS" ptx.coef=0.5 task.eval_data="$TOKENS" task.eval_rows=64 "${TRAIN_COMMON[@]}"

step "curate: best-of-N on-policy pairs (4 samples per Self-Instruct seed prompt from the SFT model, best vs worst under the reward model)"
$THRESHER curate pipeline=on_policy_pairs "input.paths=[$SHARED/stanford_alpaca/seed_tasks.jsonl.gz]" \
  input.records=self_instruct_seeds output.dir="$OUT/on_policy" stages.best_of_n.llm.model="$OUT/sft/model" \
  stages.best_of_n.scorers.0.model="$OUT/reward/model" stages.best_of_n.max_new_tokens=32 \
  stages.best_of_n.llm.batch_size=16 stages.best_of_n.llm.threads="$THREADS"

step "curate: on- and off-policy pairs mixed 1:1 (Tülu 3)"
$THRESHER curate pipeline=preferences "input.paths=[$OUT/on_policy,$PREFS]" output.dir="$OUT/prefs_mixed" \
  stages.preference_pairs.on_policy_fraction=0.5

step "train: DPO on the mixed pairs (from the SFT model, which sampled the on-policy ones)"
$THRESHER train task=dpo data="$OUT/prefs_mixed" model.path="$OUT/sft/model" output.dir="$OUT/dpo" \
  trainer.max_steps=20 trainer.micro_batch_size=4 task.max_length=512 optim.lr=1e-5 "${TRAIN_COMMON[@]}"

step "done: models in $OUT/{pretrain,sft,reward,rlhf,ppo,dpo}/model; lineage in each run.json"
