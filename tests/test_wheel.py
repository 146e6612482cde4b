"""Thresher as users get it: the wheel, installed into a fresh venv, run from a directory that is
not the checkout, with no PYTHONPATH. A user's stage package (docs/extending.md, installed with
its entry point) and config folder drive `thresher curate` on the local pool and on a local Ray;
then `thresher train` pre-trains a tiny model on tokens made in that venv.

Slow (a few minutes: most of it installing): `make test` runs it, a plain `pytest` skips it
(`-m "not slow"` in pyproject.toml). Needs the package index, or pip's cache, for the install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import REPO
from extending_example import RECIPE, check_quiet_run, web_sample, write_example

from curate.manifest import Manifest

pytestmark = pytest.mark.slow

CONSTRAINTS = REPO / "constraints" / "tested.txt"


def run(*command: str | Path, cwd: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command as a user would: no PYTHONPATH, offline for the model hub."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def build_wheel(root: Path) -> Path:
    """Build the wheel from a copy of the checkout's source files (tracked, and new files git does
    not ignore), so no build/ folder is left in the checkout and no stale file gets in."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).stdout
    source = root / "source"
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a deleted file is still listed until the deletion is staged
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", source, cwd=root)
    (wheel,) = (root / "dist").glob("thresher-*.whl")
    return wheel


def digests(folder: Path) -> dict:
    manifest = Manifest.read(folder)
    return {key: [s.sha256 for s in getattr(manifest, key)] for key in ("shards", "rejects")}


def test_installed_wheel_outside_the_checkout(tmp_path, shared_data):
    wheel = build_wheel(tmp_path)
    user = write_example(tmp_path / "user")  # the user's own folder: my-stages/ and my_conf/; the runs' cwd
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python, thresher = venv / "bin" / "python", venv / "bin" / "thresher"
    # torch in the same command as everything else, so pip takes the CPU build (STACK.md)
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        CONSTRAINTS,
        "torch==2.13.0",
        f"{wheel}[train,distributed]",
        cwd=user,
    )
    run(python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS, "./my-stages", cwd=user)

    # The venv's Thresher is the wheel's, with its config tree and specs as package data.
    where = run(python, "-c", "import curate.resources as r; print(r.CONF_DIR); print(r.TOKENIZERS_DIR)", cwd=user)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=user).stdout.strip()
    assert where.stdout.split() == [f"{site}/curate/conf", f"{site}/curate/tokenizers"]

    # The user's stage is listed through its entry point; its config file is generated.
    assert "shouting                     my_stages.ShoutingFilter" in run(thresher, "stages", cwd=user).stdout
    run(thresher, "stages", "--package", "my_stages", "--conf-dir", "my_conf", "--docs", "my_conf/STAGES.md", cwd=user)
    assert (user / "my_conf" / "stage" / "shouting.yaml").is_file()

    # The user's recipe (their folder via --config-dir) on the local pool ...
    web_sample(user / "web")
    common = [RECIPE, "input.paths=[web]", "executor.workers=2", "executor.task_mb=0.1", "executor.progress=false"]
    run(thresher, "curate", "--config-dir", "my_conf", *common, "output.dir=local", cwd=user)
    manifest = check_quiet_run(user / "local", rows_in=300)
    assert manifest.version == version("thresher")  # from the package's metadata: no git in a wheel
    # ... and on a local Ray (their folder via hydra.searchpath): the same shards, byte for byte.
    run(
        thresher,
        "curate",
        f"hydra.searchpath=[file://{user / 'my_conf'}]",
        *common,
        "executor=ray",
        "output.dir=ray",
        cwd=user,
    )
    assert digests(user / "ray") == digests(user / "local")

    # A mistake is one line that lists the user's recipes with Thresher's.
    error = run(
        thresher,
        "curate",
        "-cd",
        "my_conf",
        "pipeline=web_quite",
        "input.paths=[web]",
        "output.dir=x",
        cwd=user,
        check=False,
    )
    assert error.returncode == 2 and error.stderr.count("\n") == 1 and error.stderr.rstrip().endswith(", web_quiet")

    # Tokenizer (the `thresher` spec from the wheel), token shards, and a few pre-training steps.
    run(
        thresher,
        "curate",
        "pipeline=train_tokenizer",
        "input.paths=[local]",
        "output.dir=tokenizer",
        "stages.train_tokenizer.vocab_size=400",
        "stages.train_tokenizer.sample_rate=1.0",
        cwd=user,
    )
    run(
        thresher,
        "curate",
        "pipeline=tokenize",
        "input.paths=[local]",
        "output.dir=tokens",
        "stages.tokenize_pack.tokenizer=tokenizer/tokenizer",
        "stages.tokenize_pack.seq_len=64",
        cwd=user,
    )
    run(
        thresher,
        "train",
        "task=pretrain",
        "data=tokens",
        "model=tiny",
        "output.dir=pretrain",
        "trainer.max_steps=3",
        "trainer.micro_batch_size=4",
        "trainer.cpu_threads=1",
        "log.every=1",
        cwd=user,
    )
    record = json.loads((user / "pretrain" / "run.json").read_text())
    assert record["summary"]["steps"] == 3 and record["version"] == version("thresher")
    assert (user / "pretrain" / "model" / "config.json").is_file()
    shutil.rmtree(venv)  # 2.5 GB; kept when the test fails, to look into
