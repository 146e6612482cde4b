"""What every task does before training: join the process group, open and verify the data, lock
the run directory and write the lineage.

Multi-device runs are started by a launcher (`torchrun`, `accelerate launch`); `accelerate`'s
`PartialState` reads the process layout from the environment, so the same command runs on one CPU,
one GPU or many GPUs. Data checksums are verified once per machine (by the local main process)
before any process trains.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig

from curate import fs
from train.data import TASK_KINDS, DatasetFolder, open_dataset
from train.lineage import RunDir, model_lineage, run_record
from train.modeling import tokenizer_fingerprint, tokenizer_lineage

if TYPE_CHECKING:
    from accelerate import PartialState


def no_accelerator() -> bool:
    """True on a machine without a GPU (or other accelerator): processes then talk over gloo."""
    return not torch.accelerator.is_available()


def process_state(cfg: DictConfig) -> PartialState:
    """The process layout (rank, world size, device) as accelerate's `PartialState`.

    Under a launcher on a machine without an accelerator, accelerate only forms the process
    group (gloo) when told to run on the CPU, hence `cpu=`.
    """
    from accelerate import PartialState

    if cfg.trainer.cpu_threads:
        torch.set_num_threads(cfg.trainer.cpu_threads)
    return PartialState(cpu=no_accelerator(), timeout=timedelta(minutes=cfg.distributed.timeout_minutes))


def check_fsdp(cfg: DictConfig, state: PartialState) -> None:
    """`distributed.fsdp` needs several GPUs: accelerate would silently replicate instead (pretrain),
    transformers would fail deep in its set-up (trl tasks)."""
    from curate.errors import ConfigError

    if cfg.distributed.fsdp and (state.num_processes < 2 or state.device.type != "cuda"):
        raise ConfigError(
            f"distributed.fsdp: FSDP shards a model across several GPUs; this run has "
            f"{state.num_processes} process(es) on {state.device.type}"
        )


def device_description(state) -> str:
    device = str(state.device)
    if state.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(state.device)})"
    return device


def open_inputs(cfg: DictConfig, state) -> dict[str, DatasetFolder]:
    """The task's dataset (and the ptx dataset), checked; shards verified by each machine's main process."""
    folders = {}
    with state.local_main_process_first():
        verify = state.is_local_main_process
        folders["data"] = open_dataset(cfg.data, TASK_KINDS[cfg.task.name], "data", verify=verify)
        if cfg.ptx.data is not None:
            folders["ptx"] = open_dataset(cfg.ptx.data, ("tokens",), "ptx.data", verify=verify)
        if cfg.task.get("eval_data") is not None:
            folders["eval"] = open_dataset(cfg.task.eval_data, ("tokens",), "task.eval_data", verify=verify)
    return folders


def tokenizer_path(cfg: DictConfig, data: DatasetFolder | None = None) -> str:
    """The tokenizer folder: `tokenizer`, else the one saved with `model.path`, else the one the tokens
    manifest records (the `path` of `DatasetFolder.tokenizer()`).

    When both the data's manifest and the chosen folder carry the curate app's tokenizer
    fingerprint, they must agree: token ids from another tokenizer would train silently on noise.
    """
    from curate.errors import ConfigError

    recorded = (data.tokenizer() or {}) if data is not None else {}
    if cfg.tokenizer is not None:
        path, key = cfg.tokenizer, "tokenizer"
    elif cfg.model.path is not None:
        path, key = cfg.model.path, "model.path"
    elif recorded.get("path") and Path(recorded["path"]).is_dir():
        return recorded["path"]
    else:
        raise ConfigError("tokenizer: required (the Hugging Face tokenizer folder the data was tokenized with)")
    if fs.is_remote(path):  # a tokenizer folder on object storage: a cached local copy (curate.fs)
        path = str(fs.local_tree(path))
    found = tokenizer_fingerprint(path)
    if recorded.get("fingerprint") and found and found != recorded["fingerprint"]:
        raise ConfigError(
            f"{key}: the tokenizer in '{path}' (fingerprint {found}) is not the one the data was "
            f"tokenized with ({recorded['fingerprint']})"
        )
    return path


def start_run(
    cfg: DictConfig,
    state: PartialState,
    folders: dict[str, DatasetFolder],
    tokenizer: str,
    extra: dict[str, Any] | None = None,
) -> RunDir:
    """Lock the run directory and write run.json (inputs, lineage, config); all processes wait for it."""
    inputs: dict[str, Any] = {
        "data": folders["data"].lineage(),
        "ptx_data": folders["ptx"].lineage() if "ptx" in folders else None,
        **({"eval_data": folders["eval"].lineage()} if "eval" in folders else {}),
        "tokenizer": tokenizer_lineage(tokenizer),
        "base_model": model_lineage(cfg.model.path),
        **(extra or {}),
    }
    run = RunDir(cfg.output.dir, is_main=state.is_main_process)
    run.lock()
    try:
        run.prepare(cfg, run_record(cfg, inputs, state.num_processes, device_description(state)))
    except Exception:
        run.unlock()
        raise
    state.wait_for_everyone()
    return run
