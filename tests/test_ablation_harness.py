"""`thresher ablate` on a tiny experiment written as a user would (their own config folder): two arms
x two seeds, killed mid-run and resumed to the same result an uninterrupted run gives, one
comparison report; finished work is not redone; the same runs on Ray; errors are one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA, thresher, wait_until_gone

EXPERIMENT = """\
# @package _global_
name: tiny
inputs_dir: {shared}
output:
  dir: {out}
datasets:
  heldout:
    inputs: ["${{inputs_dir}}/wikipedia_sample"]
    overrides: [input.text_unit=line]
arms:
  shakespeare:
    inputs: ["${{inputs_dir}}/tinyshakespeare"]
    overrides: [input.text_unit=paragraph, stages.length_filter.min_chars=1]
  web:
    inputs: ["${{inputs_dir}}/c4_sample"]
tokenizer:
  vocab_size: 512
seq_len: 64
budget_tokens: 15360  # 60 steps of 4 rows x 64 tokens
seeds: [0, 1]
train: [model=tiny, trainer.micro_batch_size=4, optim.lr=3e-3, checkpoint.every=10, log.every=10]
eval: ["sets=[encyclopaedia:${{output.dir}}/data/heldout]", max_bytes=20000]
curate: [executor.workers=1, executor.progress=false]
executor:
  workers: 1
"""
RUNS = ["shakespeare-seed0", "shakespeare-seed1", "web-seed0", "web-seed1"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def write_experiment(folder: Path, name: str, text: str) -> Path:
    (folder / "ablation").mkdir(parents=True, exist_ok=True)
    (folder / "ablation" / f"{name}.yaml").write_text(text)
    return folder


def unfinished_with_checkpoint(runs: Path) -> Path | None:
    """A run directory with a complete checkpoint and no final model yet (training under way)."""
    for run in runs.glob("*") if runs.is_dir() else []:
        checkpoints = [c for c in (run / "checkpoints").glob("step-*") if not c.name.endswith(".tmp")]
        if checkpoints and not (run / "model").exists():
            return run
    return None


def kill_mid_training(command: list[str], runs: Path, timeout: float = 600) -> Path:
    """Start the ablation and SIGKILL its main process only (as a user's `kill -9 <pid>`) while a
    run is between checkpoints: the training workers end by themselves, no process survives."""
    process = subprocess.Popen(
        command, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + timeout
    victim = None
    while time.time() < deadline and process.poll() is None and victim is None:
        victim = unfinished_with_checkpoint(runs)
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert wait_until_gone(process.pid, timeout=5) == [], "processes of the killed ablation survive it"
    assert victim is not None, "the ablation ended (or timed out) before a run could be killed mid-training"
    return victim


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    """The tiny experiment, killed during a training run, then rerun to the end."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    root = tmp_path_factory.mktemp("ablation")
    out = root / "out"
    conf = write_experiment(root / "conf", "tiny", EXPERIMENT.format(shared=SHARED_DATA, out=out))
    command = [sys.executable, "-m", "curate.cli", "ablate", "--config-dir", str(conf), "ablation=tiny"]
    victim = kill_mid_training(command, out / "runs")
    assert json.loads((victim / "run.json").read_text())["finished"] is None
    finished = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    return {"out": out, "conf": conf, "victim": victim, "stdout": finished.stdout}


def test_two_arms_two_seeds_one_comparison(ablation):
    out = ablation["out"]
    for name in RUNS:
        run = json.loads((out / "runs" / name / "run.json").read_text())
        assert run["finished"] and run["summary"]["steps"] == 60 and run["summary"]["tokens"] == 15360
        assert run["data"]["path"] == str((out / "tokens" / name.split("-")[0]).resolve())  # lineage
        assert run["config"]["seed"] == int(name[-1])
        assert json.loads((out / "runs" / name / "eval.json").read_text())["sets"]["encyclopaedia"]["bits_per_byte"]
    record = json.loads((out / "ablation.json").read_text())
    comparison = record["comparison"]
    assert comparison["baseline"] == "shakespeare" and comparison["metrics"] == ["encyclopaedia bits/byte"]
    web = comparison["arms"]["web"]["encyclopaedia bits/byte"]
    shakespeare = comparison["arms"]["shakespeare"]["encyclopaedia bits/byte"]
    assert web["n"] == shakespeare["n"] == 2 and web["seeds"] == [0, 1]
    per_run = {r["name"]: r["scores"]["encyclopaedia bits/byte"] for r in record["runs"]}
    assert web["values"] == [per_run["web-seed0"], per_run["web-seed1"]]
    assert web["mean"] == pytest.approx((per_run["web-seed0"] + per_run["web-seed1"]) / 2)
    assert web["difference"] == pytest.approx(web["mean"] - shakespeare["mean"])
    assert record["arms"]["web"]["steps"] == 60 and record["arms"]["web"]["epochs"] > 0
    html = (out / "report.html").read_text()
    assert "Arms: mean over seeds" in html and "vs shakespeare" in html
    assert html.count("data:image/png;base64,") == 2  # the loss curves, and the one figure per arm
    assert 'alt="encyclopaedia bits/byte per arm"' in html
    assert (out / "plots" / "encyclopaedia_bits_per_byte.png").is_file()
    assert "| web |" in (out / "summary.md").read_text()


def test_a_killed_run_resumes_to_the_uninterrupted_result(ablation, tmp_path):
    """The run killed between checkpoints continued from its checkpoint and ends exactly where the
    same run trained without interruption ends (bit-identical weights, so identical bits per byte)."""
    from train.ablation import compose_ablation, make_plan
    from train.app import run as train
    from train.eval import compose_eval, evaluate

    victim = ablation["victim"]
    record = json.loads((victim / "run.json").read_text())
    assert len(record["resumed"]) == 1
    job = next(
        j for j in make_plan(compose_ablation(["ablation=tiny"], [str(ablation["conf"])])).jobs if j.run_dir == victim
    )
    from curate.compose import compose

    train(compose([*job.train, f"output.dir={tmp_path / 'again'}", "trainer.cpu_threads=1"], "train"))
    again = evaluate(compose_eval([f"model_dir={tmp_path / 'again'}", *job.eval[1:]]))
    resumed = json.loads((victim / "eval.json").read_text())
    assert again["sets"]["encyclopaedia"]["bits_per_byte"] == resumed["sets"]["encyclopaedia"]["bits_per_byte"]
    assert again["model"]["weights_sha256"] == resumed["model"]["weights_sha256"]


def test_a_rerun_redoes_nothing_and_report_compare_shows_the_evaluation(ablation, tmp_path):
    out = ablation["out"]
    stamps = {name: (out / "runs" / name / "eval.json").stat().st_mtime_ns for name in RUNS}
    resumed = {name: json.loads((out / "runs" / name / "run.json").read_text())["resumed"] for name in RUNS}
    spent = json.loads((out / "ablation.json").read_text())["time"]
    again = subprocess.run(
        [sys.executable, "-m", "curate.cli", "ablate", "--config-dir", str(ablation["conf"]), "ablation=tiny"],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert {name: (out / "runs" / name / "eval.json").stat().st_mtime_ns for name in RUNS} == stamps
    assert {name: json.loads((out / "runs" / name / "run.json").read_text())["resumed"] for name in RUNS} == resumed
    # The experiment's cost is every invocation's, not the last one's (a rerun costs next to nothing).
    total = json.loads((out / "ablation.json").read_text())["time"]
    assert total["invocations"] == spent["invocations"] + 1
    assert total["wall_seconds"] > spent["wall_seconds"] and total["cpu_seconds"] > spent["cpu_seconds"]
    assert set(total["runs"]) == set(spent["runs"]) == set(RUNS)
    assert total["load_average"]["start"] == spent["load_average"]["start"]

    runs = [str(out / "runs" / name) for name in RUNS]
    thresher("report", runs[0], "--compare", *runs[1:], "--out", str(tmp_path / "compare.html"))
    html = (tmp_path / "compare.html").read_text()
    value = json.loads((out / "runs" / "web-seed1" / "eval.json").read_text())["sets"]["encyclopaedia"]
    assert f"{value['bits_per_byte']:.4f}" in html and "encyclopaedia bits/byte" in html
    assert "Arms: mean over seeds" in html  # the folders' names say which runs are seeds of one arm


@pytest.mark.slow
def test_the_same_runs_on_ray(ablation, tmp_path):
    """executor=ray: one Ray task per training run; the runs equal the local ones (same seeds)."""
    out = ablation["out"]
    text = EXPERIMENT.format(shared=SHARED_DATA, out=tmp_path / "out")
    text = text.replace(
        'inputs: ["${inputs_dir}/tinyshakespeare"]\n    overrides: [input.text_unit=paragraph, stages.length_filter.min_chars=1]',
        f"data: {out / 'arms' / 'shakespeare'}",
    ).replace('inputs: ["${inputs_dir}/c4_sample"]', f"data: {out / 'arms' / 'web'}")
    text = text.replace("  vocab_size: 512", f"  path: {out / 'tokenizer' / 'tokenizer'}")
    text = text.replace("seeds: [0, 1]", "seeds: [0]").replace("  workers: 1", "  name: ray")
    conf = write_experiment(tmp_path / "conf", "tiny_ray", text)
    thresher("ablate", "--config-dir", str(conf), "ablation=tiny_ray")
    for arm in ("shakespeare", "web"):
        local = json.loads((out / "runs" / f"{arm}-seed0" / "eval.json").read_text())
        remote = json.loads((tmp_path / "out" / "runs" / f"{arm}-seed0" / "eval.json").read_text())
        assert remote["model"]["weights_sha256"] == local["model"]["weights_sha256"]


def test_mistakes_are_one_line_before_any_work(tmp_path):
    conf = write_experiment(tmp_path / "conf", "tiny", EXPERIMENT.format(shared=SHARED_DATA, out=tmp_path / "out"))
    cases = {
        "seeds=[]": "error: seeds: give at least one seed, each once",
        "ablation=nope": "error: ablation: 'nope' is not one of:",
        "baseline=mixed": "error: baseline: 'mixed' is not one of the arms: shakespeare, web",
        "train=['model=tiny','trainer.micro_batch=4']": "trainer.micro_batch: unknown option",
        "arms.web.recipe=nope": "pipeline: 'nope' is not one of:",
    }
    for override, message in cases.items():
        result = thresher("ablate", "--config-dir", str(conf), "ablation=tiny", override, check=False)
        assert result.returncode == 2, (override, result.stderr)
        assert message in result.stderr and result.stderr.count("\n") == 1, (override, result.stderr)
    assert not (tmp_path / "out").exists()  # nothing curated or trained


def test_the_documented_example_and_the_shipped_experiments_plan(tmp_path):
    """docs/ablations.md's example, as written there, and conf/ablation/*.yaml compose into plans
    (every curation, train and eval config checked) with the token budget turned into steps."""
    import re

    from train.ablation import compose_ablation, make_plan

    page = (REPO / "docs" / "ablations.md").read_text()
    example = re.search(r"```yaml\n(# @package _global_\nname: min_words\n.*?)```", page, re.S).group(1)
    conf = write_experiment(tmp_path / "conf", "min_words", example)
    plan = make_plan(compose_ablation(["ablation=min_words"], [str(conf)]), [str(conf)])
    assert [job.name for job in plan.jobs] == [f"words_{n}-seed{s}" for n in (50, 200) for s in (0, 1, 2)]
    assert {job.steps for job in plan.jobs} == {489}  # ceil(2,000,000 / (16 rows x 256 tokens))
    assert "stages.gopher_quality.min_doc_words=200" in plan.curations[2].overrides

    unrepeated = make_plan(compose_ablation(["ablation=curated_vs_raw_unrepeated", f"output.dir={tmp_path / 'u'}"]))
    assert {job.steps for job in unrepeated.jobs} == {110}  # ceil(450,000 / (16 x 256)): experiment 1's options
    longer = make_plan(compose_ablation(["ablation=dedup_vs_duplicated_longer", f"output.dir={tmp_path / 'l'}"]))
    assert {job.steps for job in longer.jobs} == {977}  # ceil(4,000,000 / (16 x 256)): experiment 2's options
    for name, runs in (("curated_vs_raw", 6), ("dedup_vs_duplicated", 6), ("lima_selection", 9)):
        plan = make_plan(compose_ablation([f"ablation={name}", f"output.dir={tmp_path / name}"]))
        assert len(plan.jobs) == runs and all(job.eval for job in plan.jobs)
    assert plan.base is not None and plan.jobs[0].train[:2] == [
        "task=sft",
        f"model.path={tmp_path}/lima_selection/base/model",
    ]
