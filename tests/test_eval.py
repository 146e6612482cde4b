"""`thresher eval`: bits per byte equals a direct computation, per domain; windows score every token
once; answer loss; memorisation agrees with greedy decoding; win rate; the command line and eval.json."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, read_dataset, thresher, write_jsonl

from curate.api import run_recipe
from tests.train_fixtures import build_inputs, tiny_reward_model, train
from train.eval import compose_eval, evaluate

KEEP_TEXT = ("pipeline=clean", "~stages.normalize", "~stages.length_filter")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return build_inputs(tmp_path_factory.getbasetemp() / "train_inputs", SHARED_DATA)


@pytest.fixture(scope="module")
def pretrained(inputs, tmp_path_factory) -> Path:
    """A tiny Llama pre-trained for 30 steps on tinyshakespeare (rows of 64 tokens)."""
    run = tmp_path_factory.mktemp("eval") / "pretrain"
    train("task=pretrain", f"data={inputs.tokens}", f"output.dir={run}", "trainer.max_steps=30", "optim.lr=3e-3")
    return run


def documents(folder: Path, texts: list[str]) -> Path:
    """A `documents` dataset holding exactly `texts` (written through the curate app)."""
    raw = write_jsonl(folder.parent / f"{folder.name}.jsonl", [{"text": t} for t in texts])
    run_recipe(raw, folder, *KEEP_TEXT)
    return folder


def paragraphs(path: Path, count: int, max_chars: int = 1200) -> list[str]:
    """The first `count` paragraphs of a real text file with 200..max_chars characters."""
    text = gzip.open(path, "rt", encoding="utf-8").read()
    found = [p.strip() for p in text.split("\n\n") if 200 <= len(p.strip()) <= max_chars]
    return found[:count]


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> dict[str, Path]:
    """Two domains: encyclopaedia (WikiText-2 paragraphs) and web (C4 pages)."""
    root = tmp_path_factory.mktemp("heldout")
    wiki = [p for p in gzip.open(SHARED_DATA / "wikitext2/valid.txt.gz", "rt").read().split("\n") if len(p) > 300]
    c4 = [json.loads(line)["text"] for line in gzip.open(SHARED_DATA / "c4_sample/c4_demo.jsonl.gz", "rt")]
    return {
        "encyclopaedia": documents(root / "wiki", [p.strip()[:1200] for p in wiki[:12]]),
        "web": documents(root / "web", [t[:1200] for t in c4[:12]]),
    }


def texts_of(folder: Path) -> list[str]:
    return read_dataset(folder).column("text").to_pylist()


def direct_bits_per_byte(model_dir: Path, texts: list[str]) -> float:
    """Σ -log2 p(token | everything before it in the document, after EOS) / UTF-8 bytes, one
    forward pass per document: the definition, computed without the eval code."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    bits = 0.0
    for text in texts:
        ids = torch.tensor([[tokenizer.eos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
        bits -= logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].sum().item() / math.log(2)
    return bits / sum(len(t.encode("utf-8")) for t in texts)


def run_eval(*overrides: str) -> dict:
    return evaluate(compose_eval(["cpu_threads=1", *overrides]))


def test_bits_per_byte_equals_a_direct_computation_per_domain(pretrained, heldout, tmp_path):
    sets = ",".join(f"{name}:{folder}" for name, folder in heldout.items())
    record = run_eval(f"model_dir={pretrained}", f"sets=[{sets}]", "context=1024", "batch_size=5")
    assert set(record["sets"]) == {"encyclopaedia", "web"}
    for name, folder in heldout.items():
        texts = texts_of(folder)
        result = record["sets"][name]
        assert result["documents"] == len(texts) and result["windows"] == len(texts)  # one window each
        assert result["bytes"] == sum(len(t.encode("utf-8")) for t in texts)
        assert result["bits_per_byte"] == pytest.approx(direct_bits_per_byte(pretrained / "model", texts), rel=1e-5)
    # the domains are measured separately: a model of Shakespeare finds the two unequally hard
    values = [record["sets"][name]["bits_per_byte"] for name in heldout]
    assert abs(values[0] - values[1]) > 0.01
    saved = json.loads((pretrained / "eval.json").read_text())
    assert saved["sets"] == record["sets"] and saved["model"]["task"] == "pretrain"
    assert saved["inputs"]["sets"]["web"]["fingerprint"]  # what was measured on, by fingerprint


def test_windows_score_every_token_exactly_once(pretrained, heldout, tmp_path, inputs):
    """A model whose logits are all zero predicts the uniform distribution, so the bits are exactly
    tokens x log2(vocabulary): any token lost or counted twice at a window boundary shows."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    uniform = tmp_path / "uniform"
    model = AutoModelForCausalLM.from_pretrained(pretrained / "model", dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # the final norm scales every hidden state to 0: zero logits
    model.save_pretrained(uniform)
    AutoTokenizer.from_pretrained(pretrained / "model").save_pretrained(uniform)
    tokenizer = AutoTokenizer.from_pretrained(uniform)
    texts = texts_of(heldout["web"])
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    expected = tokens * math.log2(model.config.vocab_size) / sum(len(t.encode("utf-8")) for t in texts)
    for stride in ("null", "4"):
        record = run_eval(f"model_dir={uniform}", f"sets=[web:{heldout['web']}]", "context=16", f"stride={stride}")
        result = record["sets"]["web"]
        assert result["tokens"] == tokens and result["windows"] > len(texts)
        assert result["bits_per_byte"] == pytest.approx(expected, rel=1e-6)  # float32 log-softmax


def test_answer_loss_equals_a_direct_computation(pretrained, inputs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = run_eval(f"model_dir={pretrained}", f"answers={inputs.chat}", "max_answers=12", "context=1024")
    result = record["answers"]
    assert result["conversations"] + sum(result["skipped"].values()) == 12

    model = AutoModelForCausalLM.from_pretrained(pretrained / "model", dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(pretrained / "model")
    chats = read_dataset(inputs.chat).column("messages").to_pylist()
    nll = tokens = 0.0
    for index in np.random.default_rng(0).permutation(len(chats))[:12]:  # the eval's seeded draw
        encoded = tokenizer.apply_chat_template(
            chats[index], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = torch.tensor([encoded["input_ids"]])
        if ids.shape[1] > 1024:
            continue
        scored = torch.tensor(encoded["assistant_masks"], dtype=torch.bool)[1:]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
        picked = logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
        nll -= picked[scored].sum().item()
        tokens += int(scored.sum())
    assert result["tokens"] == tokens
    assert result["loss"] == pytest.approx(nll / tokens, rel=1e-5)


@pytest.fixture(scope="module")
def memorizer(inputs, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model trained to near-zero loss on 6 speeches (its training documents), and a dataset
    of those 6 plus 6 speeches it never saw."""
    root = tmp_path_factory.mktemp("memorize")
    speeches = paragraphs(SHARED_DATA / "tinyshakespeare/input.txt.gz", 12, max_chars=600)
    seen = documents(root / "seen", speeches[:6])
    tokens = root / "tokens"
    run_recipe(
        seen,
        tokens,
        "pipeline=tokenize",
        f"stages.tokenize_pack.tokenizer={inputs.tokenizer}",
        "stages.tokenize_pack.seq_len=32",
    )
    run = root / "run"
    train(
        "task=pretrain",
        f"data={tokens}",
        f"output.dir={run}",
        "trainer.max_steps=300",
        "trainer.micro_batch_size=4",
        "optim.lr=5e-3",
        "model.hidden_size=96",
        "model.intermediate_size=256",
    )
    return run, documents(root / "mixed", speeches)


def test_memorization_agrees_with_greedy_decoding(memorizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, mixed = memorizer
    prompt, continuation = 8, 12
    record = run_eval(
        f"model_dir={run}",
        f"memorization.sets=[documents:{mixed}]",
        f"memorization.prompt_tokens={prompt}",
        f"memorization.continuation_tokens={continuation}",
        "memorization.samples=0",
        "context=32",
    )
    result = record["memorization"]["documents"]
    model = AutoModelForCausalLM.from_pretrained(run / "model", dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    exact = 0
    for text in texts_of(mixed):
        ids = [tokenizer.eos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids[: prompt + 1]]),
                max_new_tokens=continuation,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=None,
            )
        exact += out[0, prompt + 1 :].tolist() == ids[prompt + 1 : prompt + 1 + continuation]
    assert result["prompts"] == 12 and result["exact"] == exact
    assert 0 < exact < 12  # trained documents come back verbatim, unseen ones do not


def test_win_rate_against_a_reference_under_a_reward_model(pretrained, memorizer, inputs, tmp_path):
    from transformers import AutoTokenizer

    judge = tiny_reward_model(tmp_path / "judge", AutoTokenizer.from_pretrained(pretrained / "model"))
    common = [
        f"win_rate.reward_model={judge}",
        f"win_rate.prompts={inputs.preference}",
        "win_rate.samples=6",
        "win_rate.max_new_tokens=8",
        "context=1024",
    ]
    itself = run_eval(
        f"model_dir={pretrained}", f"win_rate.reference={pretrained}", *common, f"output={tmp_path}/a.json"
    )
    assert itself["win_rate"]["ties"] == 6 and itself["win_rate"]["win_rate"] == 0.5
    other = run_eval(
        f"model_dir={pretrained}", f"win_rate.reference={memorizer[0]}", *common, f"output={tmp_path}/b.json"
    )
    result = other["win_rate"]
    assert result["wins"] + result["ties"] + result["losses"] == 6
    low, high = result["interval95"]
    assert low <= result["win_rate"] <= high
    again = run_eval(
        f"model_dir={pretrained}", f"win_rate.reference={memorizer[0]}", *common, f"output={tmp_path}/c.json"
    )
    assert again["win_rate"] == result  # greedy decoding: the same verdicts


def test_command_line_writes_eval_json_once_and_errors_are_one_line(pretrained, heldout, inputs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(pretrained, run)
    (run / "eval.json").unlink(missing_ok=True)
    first = thresher("eval", f"model_dir={run}", f"sets=[{heldout['encyclopaedia']}]", "cpu_threads=1")
    record = json.loads((run / "eval.json").read_text())
    assert list(record["sets"]) == ["wiki"]  # a bare folder is named after itself
    assert "bits per byte" in first.stdout
    second = thresher("eval", f"model_dir={run}", f"sets=[{heldout['encyclopaedia']}]", "cpu_threads=1")
    assert "up to date" in second.stdout

    wrong_kind = thresher("eval", f"model_dir={run}", f"sets=[chat:{inputs.chat}]", check=False)
    assert wrong_kind.returncode == 2
    assert (
        wrong_kind.stderr.strip()
        == f"error: sets.chat: '{inputs.chat}' holds a 'chat' dataset; this task reads documents"
    )
    nothing = thresher("eval", f"model_dir={run}", check=False)
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1 and "nothing to evaluate" in nothing.stderr
    typo = thresher("eval", f"model_dir={run}", "max_byte=3", check=False)
    assert typo.returncode == 2 and "max_byte" in typo.stderr and typo.stderr.count("\n") == 1
