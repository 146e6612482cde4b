"""`thresher stages` (also `python -m curate.stages`): list the stages a recipe can use, or write
the stage config files and the Markdown page of a package's stage classes, so that each default
is written once, in its class.

    thresher stages                                   # every stage: built-in and installed plugins
    thresher stages --package my_stages --conf-dir my_conf --docs my_stages.md
    make conf    # the built-in ones: --package curate.stages --conf-dir conf --docs docs/stages.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from curate.stages import BUILTIN, plugin_stage_classes, stage_classes, stage_yaml, stages_markdown


def write_stage_files(package: str, conf_dir: str | None, docs: str | None) -> list[Path]:
    """Write <conf_dir>/stage/<config_name>.yaml for every stage class of `package`, and the page
    `docs`; return the files written."""
    from curate.errors import ConfigError

    classes = stage_classes(package)
    if not classes:
        raise ConfigError(f"--package: no stage classes (with a config_name) in '{package}'")
    command = "make conf" if package == BUILTIN else f"thresher stages --package {package}"
    written = []
    if conf_dir:
        folder = Path(conf_dir) / "stage"
        folder.mkdir(parents=True, exist_ok=True)
        for cls in classes:
            written.append(folder / f"{cls.config_name}.yaml")
            written[-1].write_text(stage_yaml(cls, command))
    if docs:
        written.append(Path(docs))
        written[-1].parent.mkdir(parents=True, exist_ok=True)
        written[-1].write_text(stages_markdown(classes, command, conf_dir or "conf"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="thresher stages",
        description="Without options: list every stage (built-in, and installed plugins' from the entry point "
        "group thresher.stages). With --package: write its stage configs and/or docs.",
    )
    parser.add_argument("--package", help="a package or module of stage classes (e.g. my_stages)")
    parser.add_argument("--conf-dir", help="config folder: writes <conf-dir>/stage/<config_name>.yaml per stage")
    parser.add_argument("--docs", help="Markdown page to write: each stage, its docstring and defaults")
    args = parser.parse_args(argv)
    if not args.package:
        if args.conf_dir or args.docs:
            parser.error("--conf-dir and --docs need --package")
        for cls in stage_classes() + plugin_stage_classes():
            print(f"{cls.config_name:28} {cls.__module__}.{cls.__qualname__}")
        return
    if not (args.conf_dir or args.docs):
        parser.error("--package needs --conf-dir and/or --docs")
    for path in write_stage_files(args.package, args.conf_dir, args.docs):
        print(f"wrote {path}")


if __name__ == "__main__":
    from curate.errors import user_errors_as_one_line

    with user_errors_as_one_line():
        main()
