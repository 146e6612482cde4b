"""The train app (Hydra): `thresher train task=<pretrain|sft|reward|rlhf|dpo|ppo> data=<dataset dir> [overrides]`.

Composes `conf/train.yaml` with a `task/` and a `model/` file, validates the result, and runs the
task's module. Every error a user can cause (a bad option, a missing or modified shard, a dataset
of the wrong kind, an output folder holding another run) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import hydra
from omegaconf import DictConfig

from curate.resources import CONF_DIR
from train.config import register_configs, validate

register_configs()

# One module per task, each with `run(cfg) -> summary`.
TASK_MODULES = {
    "pretrain": "train.pretrain",
    "sft": "train.sft",
    "reward": "train.reward",
    "rlhf": "train.rlhf",
    "dpo": "train.dpo",
    "ppo": "train.ppo",
}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Validate `cfg` and run its task; returns the run's summary."""
    validate(cfg)
    # transformers' own trainers still call deprecated aliases of theirs on every step.
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    return importlib.import_module(TASK_MODULES[cfg.task.name]).run(cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> None:
    from curate.app import run_job

    run_job(run, cfg)


def main() -> None:
    from curate.app import precheck

    precheck("train", sys.argv[1:])
    hydra_main()
