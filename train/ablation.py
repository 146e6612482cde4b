"""`thresher ablate`: does this data train better models? One config, one command.

    thresher ablate ablation=<experiment> [overrides]        # conf/ablation/<experiment>.yaml

An ablation names its *arms* (each a dataset: curated by a recipe with options, or an existing
folder), the proxy model and its token budget, the seeds and the evaluation. The command:

1. curates what is missing, in order: the shared `datasets` (held-out sets, pools, raw corpora),
   each arm's data, the tokenizer (pre-training ablations: trained on the arms' data unless one
   is given), each arm's token shards; for SFT ablations, the base model's data and the base
   model (pre-trained once, seed 0) unless one is given;
2. trains one proxy model per arm and seed, each in its own run directory with its lineage
   (`runs/<arm>-seed<k>/`), every arm with the same number of tokens (`budget_tokens` /
   tokens per step = `trainer.max_steps`), and evaluates each (`thresher eval`: `eval.json`);
3. writes the comparison: `report.html` (the runs side by side, each figure per arm as mean,
   spread and range over seeds against the baseline arm, one plot per figure, the options that
   differ), `ablation.json` (every number) and `summary.md` (the tables, for a write-up).

Resumable: curation runs, training runs (from their checkpoints) and evaluations each continue or
skip what is done; rerun the same command after an interruption. Adding a seed or an arm reuses
every finished run. A changed option that alters a finished run is refused by that run's folder
(`output.overwrite=true` replaces it).

Runs execute on `executor.name=local` (`executor.workers` processes, one run each at a time) or
`ray` (one Ray task per training run, with `executor.cpus_per_run` / `gpus_per_run`; every path
must be on storage all nodes see). The driver holds only the plan; each worker one model.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from curate.compose import compose, resolved_dict
from curate.errors import ConfigError, user_errors_as_one_line
from curate.manifest import MANIFEST, Manifest, code_version
from curate.runfolder import RunFolder, RunRecord, write_json_atomic

SUMMARY_FILE = "ablation.json"


@dataclass
class DataSpec:
    """A dataset the ablation curates: `inputs` through the recipe `recipe` with `overrides`."""

    inputs: list[str] = field(default_factory=list)  # files, folders, globs, datasets (thresher curate input.paths)
    recipe: str = "clean"  # a pipeline (conf/pipeline/ or the user's config folder)
    overrides: list[str] = field(default_factory=list)  # curate options: input.*, stages.*


@dataclass
class ArmSpec(DataSpec):
    """One arm: an existing dataset folder (`data`), or a dataset curated from `inputs`."""

    data: Optional[str] = None  # an existing dataset (documents for pretrain, chat for sft); wins over inputs
    train: list[str] = field(default_factory=list)  # train options for this arm only


@dataclass
class TokenizerSpec:
    """The tokenizer every run shares: an existing Hugging Face folder, or one trained here."""

    path: Optional[str] = None  # an existing tokenizer folder
    inputs: list[str] = field(default_factory=list)  # train on these (default: every arm's data, or the base data)
    vocab_size: int = 4096
    sample_rate: float = 1.0
    overrides: list[str] = field(default_factory=list)  # more options of pipeline=train_tokenizer


@dataclass
class BaseSpec:
    """SFT ablations: the model every arm fine-tunes: an existing one, or pre-trained here (seed 0)."""

    path: Optional[str] = None  # an existing model folder or run directory
    data: Optional[str] = None  # else: a documents dataset to pre-train on (tokenized with the tokenizer)
    budget_tokens: int = 0
    train: list[str] = field(default_factory=list)  # pre-training options (model=..., optim.lr=...)


@dataclass
class ExecutorSpec:
    name: str = "local"  # local (a process pool) or ray (one task per training run)
    workers: int = 1  # local: training runs at a time
    cpus_per_run: int = 1  # torch threads per run (and the CPUs Ray reserves for it)
    gpus_per_run: float = 0.0  # ray: GPUs reserved per run
    address: Optional[str] = None  # ray: a cluster ("auto", "ray://host:10001"); None starts a local Ray


@dataclass
class OutputSpec:
    dir: str = MISSING
    overwrite: bool = False  # passed to every curation and training run: replace what differs


@dataclass
class AblationConfig:
    name: str = MISSING
    inputs_dir: Optional[str] = None  # where the experiment's inputs are: its paths say ${inputs_dir}/...
    task: str = "pretrain"  # pretrain (arms are documents) or sft (arms are chat datasets)
    arms: dict[str, ArmSpec] = field(default_factory=dict)
    baseline: Optional[str] = None  # the arm the others are compared with (default: the first)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget_tokens: int = MISSING  # training tokens per run (rows x sequence length), the same for every arm
    seq_len: int = 256  # pretrain: tokens per packed row
    train: list[str] = field(default_factory=list)  # train options of every run (model=..., optim.lr=...)
    eval: list[str] = field(default_factory=list)  # eval options of every run (sets=[...], memorization.data=...)
    datasets: dict[str, DataSpec] = field(default_factory=dict)  # curated first, in order, into <dir>/data/<name>
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    base: BaseSpec = field(default_factory=BaseSpec)
    curate: list[str] = field(default_factory=list)  # options of every curation run (executor.workers=...)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    output: OutputSpec = field(default_factory=OutputSpec)


def register_configs() -> None:
    ConfigStore.instance().store(name="ablate_schema", node=AblationConfig)


register_configs()


# -- the plan -----------------------------------------------------------------------------------------


@dataclass
class Curation:
    """One curation run of the plan."""

    what: str  # for messages: "dataset wikitext", "arm curated", "tokens of curated", ...
    inputs: list[str]
    out: Path
    overrides: list[str]


@dataclass
class Job:
    """One training run and its evaluation (what a worker does)."""

    name: str  # <arm>-seed<k>, or "base"
    arm: str
    seed: int
    run_dir: Path
    train: list[str]  # train app overrides
    eval: list[str] | None  # eval app overrides; None: not evaluated (the base model)
    steps: int
    tokens_per_step: int
    config_dirs: list[str] = field(default_factory=list)  # the user's config folders (--config-dir)


@dataclass
class Plan:
    curations: list[Curation]
    base: Job | None
    jobs: list[Job]
    config_dirs: list[str]


def dataset_kind(task: str) -> str:
    return "chat" if task == "sft" else "documents"


def curation_overrides(cfg: DictConfig, recipe: str, overrides: list[str]) -> list[str]:
    return [f"pipeline={recipe}", *cfg.curate, *overrides, f"output.overwrite={str(cfg.output.overwrite).lower()}"]


def checked_compose(overrides: list[str], app: str, config_dirs: list[str], what: str) -> DictConfig:
    """Compose an app's config as its command line would; a mistake is a ConfigError naming the
    part of the ablation it is in and the key (with the valid choices, as the apps say it)."""
    from curate.app import composition_error

    try:
        return compose(overrides, app, config_dirs)
    except ConfigError as error:
        raise ConfigError(f"{what}: {error}") from None
    except Exception as error:  # Hydra raises several types; each becomes one line
        raise ConfigError(f"{what}: {composition_error(error, list(overrides), app)}") from None


def steps_for(
    cfg: DictConfig, train: list[str], budget: int, row_tokens: int, config_dirs: list[str]
) -> tuple[int, int]:
    """(optimizer steps, tokens per step) that spend `budget` tokens with the composed batch geometry."""
    composed = checked_compose([f"data={cfg.output.dir}", *train], "train", config_dirs, "train")
    per_step = composed.trainer.micro_batch_size * composed.trainer.grad_accum_steps * row_tokens
    return max(1, math.ceil(budget / per_step)), per_step


def make_plan(cfg: DictConfig, config_dirs: list[str] | None = None) -> Plan:
    """Everything the ablation will do, decided before anything runs; every curation, training and
    eval config is composed here, so a misspelt option is a one-line error before any work.
    `config_dirs`: the user's config folders (recipes, models), searched by every part."""
    from train.config import register_configs as register_train_configs
    from train.eval import register_configs as register_eval_configs

    validate(cfg)
    register_train_configs()
    register_eval_configs()
    dirs = list(config_dirs or [])
    root = Path(cfg.output.dir)
    curations = [
        Curation(
            f"dataset {name}",
            list(spec.inputs),
            root / "data" / name,
            curation_overrides(cfg, spec.recipe, spec.overrides),
        )
        for name, spec in cfg.datasets.items()
    ]
    arm_data = {}
    for name, arm in cfg.arms.items():
        if arm.data:
            arm_data[name] = Path(arm.data)
        else:
            arm_data[name] = root / "arms" / name
            curations.append(
                Curation(
                    f"arm {name}", list(arm.inputs), arm_data[name], curation_overrides(cfg, arm.recipe, arm.overrides)
                )
            )
    overwrite = f"output.overwrite={str(cfg.output.overwrite).lower()}"
    threads = f"trainer.cpu_threads={cfg.executor.cpus_per_run}"
    base = None
    tokenizer = cfg.tokenizer.path
    needs_tokens = cfg.task == "pretrain" or (cfg.base.path is None)
    if needs_tokens and tokenizer is None:
        sources = list(cfg.tokenizer.inputs) or (
            [str(p) for p in arm_data.values()] if cfg.task == "pretrain" else [str(cfg.base.data)]
        )
        curations.append(
            Curation(
                "tokenizer",
                sources,
                root / "tokenizer",
                curation_overrides(
                    cfg,
                    "train_tokenizer",
                    [
                        f"stages.train_tokenizer.vocab_size={cfg.tokenizer.vocab_size}",
                        f"stages.train_tokenizer.sample_rate={cfg.tokenizer.sample_rate}",
                        *cfg.tokenizer.overrides,
                    ],
                ),
            )
        )
        tokenizer = str(root / "tokenizer" / "tokenizer")

    def tokens(name: str, data: Path) -> Path:
        out = root / "tokens" / name
        curations.append(
            Curation(
                f"tokens of {name}",
                [str(data)],
                out,
                curation_overrides(
                    cfg,
                    "tokenize",
                    [f"stages.tokenize_pack.tokenizer={tokenizer}", f"stages.tokenize_pack.seq_len={cfg.seq_len}"],
                ),
            )
        )
        return out

    base_model = cfg.base.path
    if cfg.task == "sft" and base_model is None:
        base_tokens = tokens("base", Path(cfg.base.data))
        train = ["task=pretrain", *cfg.base.train]
        steps, per_step = steps_for(cfg, train, cfg.base.budget_tokens, cfg.seq_len, dirs)
        run_dir = root / "base"
        base = Job(
            "base",
            "base",
            0,
            run_dir,
            [
                *train,
                f"data={base_tokens}",
                f"output.dir={run_dir}",
                "seed=0",
                f"trainer.max_steps={steps}",
                threads,
                overwrite,
            ],
            None,
            steps,
            per_step,
            dirs,
        )
        base_model = str(run_dir / "model")

    jobs = []
    for name, arm in cfg.arms.items():
        if cfg.task == "pretrain":
            data = tokens(name, arm_data[name])
            train = ["task=pretrain", *cfg.train, *arm.train]
            steps, per_step = steps_for(cfg, train, cfg.budget_tokens, cfg.seq_len, dirs)
        else:
            data = arm_data[name]
            train = ["task=sft", f"model.path={base_model}", *cfg.train, *arm.train]
            composed = checked_compose([f"data={data}", *train], "train", dirs, f"arms.{name}.train")
            steps, per_step = steps_for(cfg, train, cfg.budget_tokens, composed.task.max_length, dirs)
        for seed in cfg.seeds:
            run_dir = root / "runs" / f"{name}-seed{seed}"
            overrides = [
                *train,
                f"data={data}",
                f"output.dir={run_dir}",
                f"seed={seed}",
                f"trainer.max_steps={steps}",
                threads,
                overwrite,
            ]
            evaluation = [f"model_dir={run_dir}", *cfg.eval, f"cpu_threads={cfg.executor.cpus_per_run}"]
            jobs.append(Job(f"{name}-seed{seed}", name, seed, run_dir, overrides, evaluation, steps, per_step, dirs))
    for curation in curations:  # composed now: an unknown recipe or option fails before any work
        checked_compose(
            [*curation.overrides, "input.paths=[x]", f"output.dir={curation.out}"], "curate", dirs, curation.what
        )
    for job in [*([base] if base else []), *jobs]:
        checked_compose(job.train, "train", dirs, f"train ({job.name})")
        if job.eval is not None:
            checked_compose(job.eval, "eval", dirs, "eval")
    return Plan(curations, base, jobs, dirs)


def validate(cfg: DictConfig) -> None:
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        raise ConfigError(f"{missing[0]}: required value is missing (set {missing[0]}=...)")
    if cfg.task not in ("pretrain", "sft"):
        raise ConfigError(f"task: '{cfg.task}' is not one of: pretrain, sft")
    if len(cfg.arms) < 2:
        raise ConfigError("arms: an ablation compares at least two arms")
    for name, arm in cfg.arms.items():
        if not arm.data and not arm.inputs:
            raise ConfigError(f"arms.{name}: give data (an existing dataset) or inputs (to curate)")
        if not all(c.isalnum() or c in "_." for c in str(name)):
            raise ConfigError(f"arms.{name}: an arm's name is letters, digits, '_' and '.' (it names folders)")
    if cfg.baseline is not None and cfg.baseline not in cfg.arms:
        raise ConfigError(f"baseline: '{cfg.baseline}' is not one of the arms: {', '.join(cfg.arms)}")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError("seeds: give at least one seed, each once")
    if cfg.budget_tokens <= 0:
        raise ConfigError("budget_tokens: must be > 0")
    for name, spec in cfg.datasets.items():
        if not spec.inputs:
            raise ConfigError(f"datasets.{name}.inputs: give the files, folders or datasets to curate")
    if cfg.task == "sft" and cfg.base.path is None and (cfg.base.data is None or cfg.base.budget_tokens <= 0):
        raise ConfigError("base: an SFT ablation needs base.path (a model) or base.data and base.budget_tokens")
    if cfg.executor.name not in ("local", "ray"):
        raise ConfigError(f"executor.name: '{cfg.executor.name}' is not one of: local, ray")
    if cfg.executor.workers < 1 or cfg.executor.cpus_per_run < 1:
        raise ConfigError("executor.workers and executor.cpus_per_run: must be >= 1")
    if not cfg.eval:
        raise ConfigError("eval: give the eval options of every run (sets=[domain:<dataset>,...] and/or answers=...)")


# -- running it ---------------------------------------------------------------------------------------


def run_curation(curation: Curation, config_dirs: list[str]) -> None:
    from curate.api import run_recipe

    if not curation.inputs:
        raise ConfigError(f"{curation.what}: no inputs")
    print(f"ablate: curate {curation.what} -> {curation.out}", flush=True)
    try:
        run_recipe(curation.inputs, curation.out, *curation.overrides, config_dirs=config_dirs)
    except ConfigError as error:
        hint = "; set tokenizer.inputs (one schema) or tokenizer.path" if curation.what == "tokenizer" else ""
        raise ConfigError(f"{curation.what}: {error}{hint}") from None


def train_and_evaluate(job: Job) -> dict[str, Any]:
    """A worker's work: the training run (resumed or skipped if done), then its evaluation.
    Their console output goes to `<ablation dir>/logs/<job>.log` (the run directory is the train
    app's own)."""
    from contextlib import redirect_stderr, redirect_stdout

    started, cpu = time.perf_counter(), time.process_time()
    logs = job.run_dir.parent.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{job.name}.log", "a") as log, redirect_stdout(log), redirect_stderr(log):
        from train.app import run as train
        from train.eval import evaluate

        cfg = compose(job.train, "train", job.config_dirs)
        if not finished_as_planned(job.run_dir, cfg):
            train(cfg)
        record = evaluate(compose(job.eval, "eval", job.config_dirs)) if job.eval is not None else None
    seconds = {"wall": round(time.perf_counter() - started, 1), "cpu": round(time.process_time() - cpu, 1)}
    return {"name": job.name, "eval": record, "seconds": seconds}


def finished_as_planned(run_dir: Path, cfg: DictConfig) -> bool:
    """True if `run_dir` holds a finished run of exactly this config on the same data and base model
    (rerunning it would only reload and re-save it)."""
    from curate.runfolder import without_keys
    from train.lineage import MODEL_LINEAGE, RUN_FILE, VOLATILE_KEYS

    file = run_dir / RUN_FILE
    if not file.is_file():
        return False
    record = json.loads(file.read_text())
    if not record.get("finished"):
        return False
    same_config = without_keys(record.get("config") or {}, VOLATILE_KEYS) == without_keys(
        resolved_dict(cfg), VOLATILE_KEYS
    )
    data = Path(cfg.data)
    same_data = (data / MANIFEST).is_file() and (record.get("data") or {}).get("fingerprint") == Manifest.read(
        data
    ).fingerprint
    base = (record.get("base_model") or {}).get("lineage") or {}
    current = Path(cfg.model.path) / MODEL_LINEAGE if cfg.model.path else None
    same_base = current is None or (
        current.is_file() and json.loads(current.read_text()).get("fingerprint") == base.get("fingerprint")
    )
    return bool(same_config and same_data and same_base)


def run_jobs(jobs: list[Job], executor: DictConfig) -> list[dict[str, Any]]:
    """Every job, on the local process pool or Ray; the first failure stops the ablation (finished
    runs stay: the rerun skips them)."""
    results: list[dict[str, Any]] = []

    def done(result: dict[str, Any]) -> None:
        results.append(result)
        scores = ", ".join(f"{k} {v:.4f}" for k, v in scores_of(result["eval"]).items())
        print(f"ablate: [{len(results)}/{len(jobs)}] {result['name']}: {scores}", flush=True)

    if executor.name == "ray":
        run_on_ray(jobs, executor, done)
    else:
        run_locally(jobs, executor, done)
    return results


def run_on_ray(jobs: list[Job], executor: DictConfig, done: Callable[[dict[str, Any]], None]) -> None:
    """One Ray task per job, each reserving `cpus_per_run` CPUs and `gpus_per_run` GPUs."""
    import ray

    ray.init(  # no address: a Ray of our own ("local"), never another process's that happens to run here
        address=executor.address or "local", include_dashboard=False, ignore_reinit_error=True, log_to_driver=False
    )
    remote = ray.remote(num_cpus=executor.cpus_per_run, num_gpus=executor.gpus_per_run)(train_and_evaluate)
    pending = [remote.remote(job) for job in jobs]
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        done(ray.get(finished[0]))


def run_locally(jobs: list[Job], executor: DictConfig, done: Callable[[dict[str, Any]], None]) -> None:
    """`executor.workers` processes, each a fresh interpreter per job (no state shared between runs),
    each ending with this process (a `kill -9` of the ablation leaves no training behind)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from curate.executors.local import exit_with_parent

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        executor.workers, mp_context=context, max_tasks_per_child=1, initializer=exit_with_parent
    ) as pool:
        futures = {pool.submit(train_and_evaluate, job) for job in jobs}
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if error is not None:
                    for other in futures:
                        other.cancel()
                    raise error
                done(future.result())


def scores_of(record: dict[str, Any] | None) -> dict[str, float]:
    from curate.report.compare import eval_scores

    return eval_scores(record)


class AblationFolder(RunFolder):
    """The ablation's folder: locked while a harness runs in it; its parts guard themselves."""

    what = "ablation"

    def previous(self) -> RunRecord | None:
        return None

    def has_progress(self) -> bool:
        return False

    def begin(self, fingerprint: str, config: dict[str, Any]) -> None:
        """Nothing: every curation and training run keeps its own record."""


def run(cfg: DictConfig, config_dirs: list[str] | None = None) -> dict[str, Any]:
    """Plan, curate, train, evaluate, compare; returns what ablation.json holds."""
    clock = Clock()
    plan = make_plan(cfg, config_dirs)
    root = Path(cfg.output.dir)
    with AblationFolder(root):
        (root / "ablation.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        for curation in plan.curations:
            run_curation(curation, plan.config_dirs)
        clock.mark("curation")
        if plan.base is not None:
            print(f"ablate: pre-train the base model -> {plan.base.run_dir}", flush=True)
            clock.jobs += run_jobs([plan.base], cfg.executor)
        print(f"ablate: {len(plan.jobs)} runs ({len(cfg.arms)} arms x {len(cfg.seeds)} seeds)", flush=True)
        clock.jobs += run_jobs(plan.jobs, cfg.executor)
        clock.mark("training and evaluation")
        summary = write_summary(cfg, plan, clock)
    print(f"ablate: comparison in {root / 'report.html'}; figures in {root / 'summary.md'}", flush=True)
    return summary


class Clock:
    """Wall time and CPU time of this invocation. The machine is often shared: the CPU seconds
    (this process and every child process it waited for; not Ray's workers) say what the work
    costs, the wall time what it took here, the load average how busy the machine was."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.load = [round(x, 2) for x in os.getloadavg()]
        self.phases: dict[str, float] = {}
        self.jobs: list[dict[str, Any]] = []

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self.last, 1)
        self.last = now

    def record(self) -> dict[str, Any]:
        import resource

        cpu = sum(
            usage.ru_utime + usage.ru_stime
            for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
        )
        return {
            "wall_seconds": round(time.perf_counter() - self.started, 1),
            "cpu_seconds": round(cpu, 1),
            "phases_wall_seconds": self.phases,
            "load_average": {"start": self.load, "end": [round(x, 2) for x in os.getloadavg()]},
            "runs": {job["name"]: job["seconds"] for job in self.jobs},
        }


def previous_time(root: Path) -> dict[str, Any] | None:
    """The time an earlier invocation of this ablation recorded (None: this is the first to finish)."""
    try:
        return json.loads((root / SUMMARY_FILE).read_text()).get("time")
    except (OSError, ValueError):
        return None


def accumulated(previous: dict[str, Any] | None, now: dict[str, Any]) -> dict[str, Any]:
    """This invocation's time added to the earlier ones': a rerun that only re-evaluates (or finishes
    a few runs) must not replace what the experiment cost with what the rerun cost. The load
    average is the first invocation's at the start and this one's at the end."""
    if not previous:
        return {**now, "invocations": 1}

    def added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {
            key: added(a.get(key, {}), b.get(key, {}))
            if isinstance(a.get(key, b.get(key)), dict)
            else round(a.get(key, 0) + b.get(key, 0), 1)
            for key in {**a, **b}
        }

    return {
        "wall_seconds": round(previous["wall_seconds"] + now["wall_seconds"], 1),
        "cpu_seconds": round(previous["cpu_seconds"] + now["cpu_seconds"], 1),
        "phases_wall_seconds": added(previous.get("phases_wall_seconds", {}), now["phases_wall_seconds"]),
        "load_average": {"start": previous["load_average"]["start"], "end": now["load_average"]["end"]},
        "runs": added(previous.get("runs", {}), now["runs"]),
        "invocations": previous.get("invocations", 1) + 1,
    }


# -- the comparison -----------------------------------------------------------------------------------


def ordered_jobs(cfg: DictConfig, plan: Plan) -> list[Job]:
    """The runs with the baseline arm's first (the comparison measures the others against it)."""
    baseline = cfg.baseline or next(iter(cfg.arms))
    return sorted(plan.jobs, key=lambda job: job.arm != baseline)


def write_summary(cfg: DictConfig, plan: Plan, clock: Clock) -> dict[str, Any]:
    from curate.report.compare import arm_figure, arm_summary, arms_of, load_entry, write_comparison

    root = Path(cfg.output.dir)
    jobs = ordered_jobs(cfg, plan)
    labels = [job.name for job in jobs]
    write_comparison([job.run_dir for job in jobs], root / "report.html", labels)
    entries = [load_entry(job.run_dir, job.name) for job in jobs]
    summary = arm_summary(arms_of(entries))
    plots = root / "plots"
    plots.mkdir(exist_ok=True)
    for metric in summary["metrics"]:
        figure = arm_figure(metric, summary)
        figure.savefig(plots / f"{metric.replace(' ', '_').replace('/', '_per_')}.png", dpi=90, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
    record = {
        "name": cfg.name,
        "task": cfg.task,
        "version": code_version(),
        "time": accumulated(previous_time(root), clock.record()),
        "budget_tokens": cfg.budget_tokens,
        "arms": {
            name: {
                "data": str(arm.data or root / "arms" / name),
                "steps": next(j.steps for j in jobs if j.arm == name),
                "tokens": next(j.steps * j.tokens_per_step for j in jobs if j.arm == name),
                **data_tokens(root, name, cfg),
            }
            for name, arm in cfg.arms.items()
        },
        "runs": [
            {"name": e.label, "arm": job.arm, "seed": job.seed, "path": str(job.run_dir), "scores": e.scores}
            for e, job in zip(entries, jobs)
        ],
        "comparison": summary,
        "config": resolved_dict(cfg),
    }
    write_json_atomic(root / SUMMARY_FILE, record)
    (root / "summary.md").write_text(markdown(record))
    return record


def data_tokens(root: Path, arm: str, cfg: DictConfig) -> dict[str, Any]:
    """How much data an arm has (pre-training: tokens, and how often the budget repeats them; SFT:
    examples)."""
    if cfg.task == "sft":
        folder = Path(cfg.arms[arm].data or root / "arms" / arm)
        return {"data_examples": Manifest.read(folder).rows} if (folder / MANIFEST).is_file() else {}
    folder = root / "tokens" / arm
    if not (folder / MANIFEST).is_file():
        return {}
    tokens = Manifest.read(folder).rows * cfg.seq_len
    return {"data_tokens": tokens, "epochs": round(cfg.budget_tokens / tokens, 2) if tokens else None}


def markdown(record: dict[str, Any]) -> str:
    """The comparison as Markdown tables: one per figure, one row per arm."""
    summary = record["comparison"]
    lines = [f"# Ablation `{record['name']}`", ""]
    lines.append("| arm | steps | training tokens | data | epochs |")
    lines.append("|---|---|---|---|---|")
    for name, arm in record["arms"].items():
        data = (
            f"{arm['data_tokens']:,} tokens"
            if "data_tokens" in arm
            else (f"{arm['data_examples']:,} examples" if "data_examples" in arm else "-")
        )
        lines.append(f"| {name} | {arm['steps']:,} | {arm['tokens']:,} | {data} | {arm.get('epochs', '-')} |")
    for metric in summary["metrics"]:
        lines += ["", f"**{metric}** (baseline: {summary['baseline']})", ""]
        lines.append("| arm | per seed | mean | std | range | vs baseline | ranges overlap |")
        lines.append("|---|---|---|---|---|---|---|")
        for arm, row in summary["arms"].items():
            if metric not in row:
                continue
            s = row[metric]
            seeds = ", ".join(f"{v:.4f}" for v in s["values"])
            versus = f"{s['difference']:+.4f}" if "difference" in s else "baseline"
            overlap = (
                ""
                if "difference" not in s
                else ("no (better)" if s["better"] else ("no" if not s["ranges_overlap"] else "yes"))
            )
            lines.append(
                f"| {arm} | {seeds} | **{s['mean']:.4f}** | {s['std']:.4f} | {s['min']:.4f} – {s['max']:.4f} | {versus} | {overlap} |"
            )
    spent = record["time"]
    load = spent["load_average"]
    lines += [
        "",
        f"{spent['wall_seconds'] / 60:.1f} minutes here"
        + (f" over {spent['invocations']} invocations" if spent.get("invocations", 1) > 1 else "")
        + f" (load average {load['start'][0]} at the start, "
        f"{load['end'][0]} at the end); {spent['cpu_seconds'] / 60:.1f} CPU-minutes, "
        f"{spent['cpu_seconds'] / 120:.1f} minutes of 2 dedicated cores.",
    ]
    return "\n".join(lines) + "\n"


USAGE = """usage: thresher ablate [--config-dir <folder>] ablation=<experiment> [overrides]

Runs the experiment conf/ablation/<experiment>.yaml (or <folder>/ablation/<experiment>.yaml):
curates what is missing, trains every arm x seed, evaluates, writes <output.dir>/report.html,
ablation.json and summary.md. Rerun the same command to resume. Options: train/ablation.py
(AblationConfig); docs/ablations.md.
"""


def compose_ablation(overrides: list[str], config_dirs: list[str] | None = None) -> DictConfig:
    """The resolved ablation config, as `thresher ablate` composes it."""
    register_configs()
    return compose(overrides, "ablate", config_dirs or [])


def main(argv: list[str] | None = None) -> None:
    """`thresher ablate`. Not a Hydra main: the harness composes the configs of the curate, train
    and eval apps itself (Hydra allows one initialisation at a time), so there is no --multirun
    (the ablation is the sweep)."""
    from curate.app import precheck, split_config_dir

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return
    precheck("ablate", argv)
    config_dir, overrides = split_config_dir(argv)
    dirs = [config_dir] if config_dir else []
    try:
        with user_errors_as_one_line():
            run(compose_ablation(overrides, dirs), dirs)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
