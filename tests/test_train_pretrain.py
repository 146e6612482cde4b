"""Pre-training on token shards: the loss falls, a killed run resumes bit-identically, two DDP
processes train exactly like one process with gradient accumulation, a corrupted shard is refused,
the run directory holds the lineage, and the data loader is memory-mapped, deterministic and
rank-disjoint."""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curate.manifest import Manifest
from tests.conftest import REPO
from tests.train_fixtures import metrics, tiny_llama_config, train

TINY = ["trainer.micro_batch_size=4", "log.every=1", "optim.warmup_steps=2", "optim.lr=3e-3"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "train", *args]


def subprocess_env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def losses_by_step(run_dir: Path) -> dict[int, list[float]]:
    """Every logged loss per step (a step done twice, before a kill and after the resume, has two)."""
    found: dict[int, list[float]] = {}
    for line in metrics(run_dir):
        found.setdefault(line["step"], []).append(line["loss"])
    return found


def test_loss_falls_on_a_learnable_corpus(inputs, tmp_path):
    summary = train(
        "task=pretrain",
        f"data={inputs.tokens}",
        f"output.dir={tmp_path / 'run'}",
        "trainer.max_steps=60",
        "trainer.micro_batch_size=8",
        "log.every=5",
        "optim.lr=3e-3",
        "optim.warmup_steps=5",
    )
    logged = [m["loss"] for m in metrics(tmp_path / "run")]
    uniform = math.log(512)  # a model that learnt nothing: the uniform distribution over the vocabulary
    assert logged[0] > uniform - 0.2
    assert summary["final_loss"] < uniform - 1.0, logged
    assert summary["steps"] == 60 and summary["tokens"] == 60 * 8 * 64
    assert all(m["tokens_per_s"] > 0 for m in metrics(tmp_path / "run"))


def test_killed_run_resumes_bit_identically(inputs, tmp_path):
    common = [
        "task=pretrain",
        f"data={inputs.tokens}",
        "trainer.max_steps=24",
        "checkpoint.every=5",
        "trainer.grad_accum_steps=2",
        *TINY,
    ]
    reference = tmp_path / "reference"
    train(*common, f"output.dir={reference}")

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        cli(*common, f"output.dir={killed}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
    )
    for line in process.stdout:
        if line.startswith("step 12/"):  # after the checkpoint at step 10, before the next one
            process.send_signal(signal.SIGKILL)
            break
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "model").exists()

    resumed = subprocess.run(
        cli(*common, f"output.dir={killed}"), capture_output=True, text=True, env=subprocess_env(), cwd=REPO
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "step-000000" in resumed.stdout

    expected, got = losses_by_step(reference), losses_by_step(killed)
    assert sorted(got) == list(range(1, 25))
    for step, values in got.items():
        # steps redone after the resume (11, 12, ...) give the same loss as before the kill
        assert values == [expected[step][0]] * len(values), f"step {step}: {values} != {expected[step]}"
    assert any(len(values) > 1 for values in got.values())
    final = "model/model.safetensors"
    assert (killed / final).read_bytes() == (reference / final).read_bytes()
    assert len(json.loads((killed / "run.json").read_text())["resumed"]) == 1


def test_two_ddp_processes_train_like_one_with_accumulation(inputs, tmp_path):
    """torchrun with 2 CPU processes (gloo) x micro-batch 4 sees the same rows per step as one
    process with 2 accumulated micro-batches of 4: the losses must agree."""
    common = ["task=pretrain", f"data={inputs.tokens}", "trainer.max_steps=6", "checkpoint.every=3", *TINY]
    single = tmp_path / "single"
    train(*common, "trainer.grad_accum_steps=2", f"output.dir={single}")
    ddp = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "train",
            *common,
            f"output.dir={ddp}",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lineage = json.loads((ddp / "run.json").read_text())
    assert lineage["world_size"] == 2
    assert sorted(p.name for p in (ddp / "checkpoints" / "step-00000006").glob("random_states_*")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]
    np.testing.assert_allclose([m["loss"] for m in metrics(ddp)], [m["loss"] for m in metrics(single)], rtol=1e-5)


def test_corrupted_shard_is_refused(inputs, tmp_path):
    data = tmp_path / "tokens"
    shutil.copytree(inputs.tokens, data)
    manifest = Manifest.read(data)
    shard = data / manifest.shards[1].path
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the token values
    shard.write_bytes(bytes(content))

    result = subprocess.run(
        cli("task=pretrain", f"data={data}", f"output.dir={tmp_path / 'run'}"),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "checksum does not match the manifest" in result.stderr and shard.name in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()

    shard.write_bytes(bytes(content[:-10]))  # truncated
    with pytest.raises(Exception, match="does not match the manifest"):
        train("task=pretrain", f"data={data}", f"output.dir={tmp_path / 'run2'}")


def test_run_directory_holds_the_lineage(inputs, tmp_path):
    from curate.manifest import code_version

    run_dir = tmp_path / "run"
    train(
        "task=pretrain",
        f"data={inputs.tokens}",
        f"output.dir={run_dir}",
        "trainer.max_steps=3",
        "task.doc_mask=true",
        *TINY,
    )
    manifest = Manifest.read(inputs.tokens)
    lineage = json.loads((run_dir / "run.json").read_text())
    assert lineage["task"] == "pretrain" and lineage["finished"]
    assert lineage["version"] == code_version()
    assert lineage["packages"]["torch"] and lineage["packages"]["transformers"]
    assert lineage["data"]["fingerprint"] == manifest.fingerprint
    assert lineage["data"]["path"] == str(inputs.tokens.resolve())
    assert [s["sha256"] for s in lineage["data"]["shards"]] == [s.sha256 for s in manifest.shards]
    recorded = next(s.details["tokenizer"] for s in manifest.stages if s.name == "tokenize_pack")
    assert lineage["data"]["tokenizer"] == recorded and recorded["fingerprint"]
    assert set(lineage["tokenizer"]["files"]) >= {"tokenizer.json", "tokenizer_config.json"}
    assert lineage["config"]["task"]["name"] == "pretrain" and lineage["config"]["trainer"]["max_steps"] == 3
    assert lineage["config"]["output"]["dir"] == str(run_dir)  # resolved, not "${task.name}"
    assert "max_steps: 3" in (run_dir / "config.yaml").read_text()
    copied = json.loads((run_dir / "model" / "thresher_lineage.json").read_text())
    assert copied["fingerprint"] == lineage["fingerprint"] and copied["summary"]["steps"] == 3

    # the same command continues the same run; another config is refused without output.overwrite
    train(
        "task=pretrain",
        f"data={inputs.tokens}",
        f"output.dir={run_dir}",
        "trainer.max_steps=3",
        "task.doc_mask=true",
        *TINY,
    )
    with pytest.raises(
        Exception,
        match=r"holds a finished training run of a different config \(task.doc_mask: True -> False; trainer.max_steps: 3 -> 4\)",
    ):
        train("task=pretrain", f"data={inputs.tokens}", f"output.dir={run_dir}", "trainer.max_steps=4", *TINY)
    train(
        "task=pretrain",
        f"data={inputs.tokens}",
        f"output.dir={run_dir}",
        "trainer.max_steps=4",
        "output.overwrite=true",
        *TINY,
    )
    assert json.loads((run_dir / "run.json").read_text())["summary"]["steps"] == 4


def test_token_rows_are_memory_mapped_and_batches_deterministic(inputs):
    from train.data import TokenBatches, TokenRows, open_dataset

    folder = open_dataset(inputs.tokens, ("tokens",))
    rows = TokenRows(folder.shard_paths)
    assert len(rows) == folder.rows and rows.seq_len == 64 and len(folder.shard_paths) > 1
    for block in rows.blocks:  # views over the mapped files, not copies
        assert not block.flags.owndata and not block.flags.writeable

    one = TokenBatches(rows, micro_batch_size=4, seed=7)
    again = TokenBatches(rows, micro_batch_size=4, seed=7)
    assert torch.equal(one.batch(123)["input_ids"], again.batch(123)["input_ids"])  # a pure function of the index
    assert not torch.equal(one.batch(0)["input_ids"], TokenBatches(rows, 4, seed=8).batch(0)["input_ids"])

    seen = np.concatenate([one.indices(i) for i in range(one.per_epoch)])
    assert len(np.unique(seen)) == len(seen) == one.per_epoch * 4  # an epoch visits each row at most once
    assert not np.array_equal(one.indices(0), one.indices(one.per_epoch))  # a new order each epoch

    ranks = [TokenBatches(rows, 2, seed=7, rank=r, world_size=2) for r in range(2)]
    for index in range(5):
        parts = [r.indices(index) for r in ranks]
        assert not set(parts[0]) & set(parts[1])  # ranks never share rows
        assert np.array_equal(np.concatenate(parts), one.indices(index))  # together: the global micro-batch

    plain = TokenBatches(rows, 4, seed=7, shuffle=False)
    assert np.array_equal(plain.batch(0)["input_ids"].numpy(), np.stack([rows.blocks[0][i] for i in range(4)]))
    assert torch.equal(plain.batch(0)["labels"], plain.batch(0)["input_ids"])  # no pad id: every token counts


def test_one_line_errors(inputs, tmp_path, capsys):
    """Composition errors (checked before Hydra runs) and run-time errors are one line each."""
    from curate.app import precheck
    from curate.errors import ThresherError

    importlib.import_module("train.app")  # registers the train schemas, as `thresher train` does

    def composition_error(*args: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            precheck("train", list(args))
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1, error
        return error

    def run_error(*args: str) -> str:
        with pytest.raises(ThresherError) as error:
            train(*args)
        assert "\n" not in str(error.value)
        return str(error.value)

    assert "trainer.max_stepz: unknown option; valid: max_steps" in composition_error(
        "task=pretrain", f"data={inputs.tokens}", "trainer.max_stepz=3"
    )
    assert "task: 'sfft' is not one of: dpo, ppo, pretrain, reward, rlhf, sft" in composition_error("task=sfft")
    assert "data: required value is missing" in run_error("task=pretrain")
    assert "holds a 'chat' dataset; this task reads tokens" in run_error(
        "task=pretrain", f"data={inputs.chat}", f"output.dir={tmp_path / 'a'}"
    )
    assert "distributed.fsdp: FSDP shards a model across several GPUs; this run has 1 process(es) on cpu" in run_error(
        "task=pretrain", f"data={inputs.tokens}", "distributed.fsdp=true", f"output.dir={tmp_path / 'b'}"
    )
    assert "model.vocab_size: 64 is smaller than the tokenizer's 512" in run_error(
        "task=pretrain", f"data={inputs.tokens}", "model.vocab_size=64", f"output.dir={tmp_path / 'c'}"
    )
    assert "data: '/nonexistent' does not exist" in run_error("task=pretrain", "data=/nonexistent")


def test_document_mask_and_padding(inputs):
    """`doc_mask` restarts positions at each document (transformers then masks attention across
    documents); pad ids are left out of the loss."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from train.data import TokenBatches, TokenRows, open_dataset

    rows = TokenRows(open_dataset(inputs.tokens, ("tokens",)).shard_paths)
    offsets, values = rows.doc_starts[0]
    row = next(i for i in range(len(offsets) - 1) if offsets[i + 1] - offsets[i] >= 2)
    starts = values[offsets[row] : offsets[row + 1]]
    positions = rows.position_ids(np.array([row]))[0]
    assert positions[0] == 0 and all(positions[s] == 0 for s in starts)
    restarts = set(starts.tolist()) | {0}
    assert all(positions[i] == positions[i - 1] + 1 for i in range(1, rows.seq_len) if i not in restarts)

    eos = AutoTokenizer.from_pretrained(inputs.tokenizer).eos_token_id
    batches = TokenBatches(rows, 4, seed=0, shuffle=False, pad_id=eos, doc_mask=True)  # eos stands in for padding
    batch = batches.batch(row // 4)  # holds `row`, whose documents end with eos
    assert torch.equal(batch["labels"] == -100, batch["input_ids"] == eos) and (batch["labels"] == -100).any()

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(512, max_position_embeddings=128)).eval()
    with torch.no_grad():
        masked = model(**batch).logits[row % 4]
        unmasked = model(input_ids=batch["input_ids"]).logits[row % 4]
    first = int(starts[starts > 0][0])
    assert torch.allclose(masked[:first], unmasked[:first], atol=1e-6)  # the row's first document: same context
    assert not torch.allclose(masked[first:], unmasked[first:], atol=1e-4)  # later ones no longer see it


def test_tokenizer_recorded_by_the_tokenize_stage_is_found(inputs, tmp_path):
    from train.data import DatasetFolder

    manifest = Manifest.read(inputs.tokens)
    manifest.stage("tokenize_pack").details["tokenizer"] = {"path": str(inputs.tokenizer), "fingerprint": "abc"}
    folder = DatasetFolder(tmp_path, manifest)
    assert folder.tokenizer() == {"path": str(inputs.tokenizer), "fingerprint": "abc"}
    assert folder.lineage()["tokenizer"]["fingerprint"] == "abc"


def test_tokenizer_must_match_the_one_the_data_was_made_with(inputs, tmp_path):
    """With the curate app's tokenizer fingerprint on both sides, a different tokenizer is refused."""
    from curate.errors import ConfigError
    from tests.train_fixtures import compose_train
    from train.data import DatasetFolder
    from train.runtime import tokenizer_path

    tokenizer = tmp_path / "tokenizer"
    shutil.copytree(inputs.tokenizer, tokenizer)
    (tokenizer / "thresher_tokenizer.json").write_text(json.dumps({"fingerprint": "aaaa"}))
    manifest = Manifest.read(inputs.tokens)
    manifest.stage("tokenize_pack").details["tokenizer"] = {"path": "x", "fingerprint": "bbbb"}
    data = DatasetFolder(tmp_path, manifest)
    cfg = compose_train(["task=pretrain", f"data={inputs.tokens}", f"tokenizer={tokenizer}"])
    with pytest.raises(ConfigError, match="is not the one the data was tokenized with"):
        tokenizer_path(cfg, data)
    data.manifest.stages[0].details["tokenizer"]["fingerprint"] = "aaaa"
    assert tokenizer_path(cfg, data) == str(tokenizer)
