"""The `thresher` command: curate | train | eval | ablate | inspect | report | stages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

USAGE = """usage: thresher <command> [arguments]

commands:
  curate pipeline=<recipe> input.paths=[...] output.dir=<dir> [overrides]   run a curation recipe
         (--plan: print its tasks, partitions and memory estimate, and stop)
  train task=<pretrain|sft|reward|rlhf|ppo|dpo> data=<dataset dir> [overrides]  train on curated shards
  eval model_dir=<run dir> sets=[domain:<dataset dir>,...] [overrides]          held-out bits per byte, answers, memorisation
  ablate ablation=<experiment> [overrides]                                  curate, train and evaluate arms x seeds; compare
  inspect <dataset dir> [--rows N] [--rejects [STAGE] | --quarantine]      summarise a dataset
  report <dataset dir> [--compare <dir> ...] [--out FILE]                   HTML report; side by side
  stages [--package PKG --conf-dir DIR --docs FILE]                         list stages; write a package's configs

`thresher curate --help` (train, eval, ablate likewise) list the config groups and options (Hydra);
`--config-dir <dir>` adds a folder of your own recipes and stage configs (docs/extending.md).
"""


def train_side_app(module: str) -> Callable[[], None]:
    """The entry point of an app of the train package (train, eval, ablate)."""
    if module == "train":
        from train.app import main as train_main

        return train_main
    if module == "eval":
        from train.eval import main as eval_main

        return eval_main
    from train.ablation import main as ablate_main

    return ablate_main


def hydra_app(module: str, argv: list[str]) -> None:
    """Run a Hydra app with `argv` as its command line (train, eval and ablate need the train extra)."""
    if module == "curate" and "--plan" in argv:  # the plan and its memory estimate, nothing run
        argv = [arg for arg in argv if arg != "--plan"] + ["plan=true"]
    sys.argv = [f"thresher {module}"] + argv
    if module == "curate":
        from curate.app import main as curate_main

        curate_main()
        return
    try:
        app = train_side_app(module)
    except ImportError as error:
        print(f"error: the {module} app cannot be loaded ({error}); install with `make install`", file=sys.stderr)
        sys.exit(2)
    app()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command in ("curate", "train", "eval", "ablate"):
        hydra_app(command, rest)
        return
    from curate.errors import user_errors_as_one_line

    with user_errors_as_one_line():
        if command == "inspect":
            parser = argparse.ArgumentParser(prog="thresher inspect")
            parser.add_argument("dataset")
            parser.add_argument("--rows", type=int, default=3, help="sample rows to show")
            shown = parser.add_mutually_exclusive_group()
            shown.add_argument(
                "--rejects", nargs="?", const="", metavar="STAGE", help="show dropped rows (of one stage) instead"
            )
            shown.add_argument("--quarantine", action="store_true", help="show quarantined input rows instead")
            args = parser.parse_args(rest)
            from curate.inspection import inspect_dataset

            inspect_dataset(args.dataset, args.rows, rejects=args.rejects, quarantine=args.quarantine)
        elif command == "report":
            parser = argparse.ArgumentParser(prog="thresher report")
            parser.add_argument("dataset")
            parser.add_argument("--compare", nargs="+", metavar="DIR", help="more datasets, side by side")
            parser.add_argument("--out", help="comparison file (default: comparison.html beside the first dataset)")
            args = parser.parse_args(rest)
            from curate.report import build_report

            print(build_report(args.dataset, args.compare, args.out))
        elif command == "stages":
            from curate.stages.__main__ import main as stages

            stages(rest)
        else:
            print(f"error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
