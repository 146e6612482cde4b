"""A user's stage package and config folder (docs/extending.md) work with Thresher unchanged: the
stage is listed with the built-in ones (entry point group `thresher.stages`), its config file and
docs are generated, a recipe in the user's folder runs it with built-in stages, and mistakes are
one-line errors that list the user's choices too."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from conftest import REPO
from extending_example import RECIPE, check_quiet_run, web_sample, write_example

from curate.errors import ConfigError

WORKERS = ("executor.workers=2", "executor.task_mb=0.1")


@pytest.fixture
def example(tmp_path, monkeypatch) -> Path:
    """The example written out and "installed" into this process as `pip install ./my-stages`
    would: the package importable, and its distribution's metadata (with the entry point) on
    sys.path, where importlib.metadata finds it."""
    root = write_example(tmp_path / "user")
    project = tomllib.loads((root / "my-stages" / "pyproject.toml").read_text())["project"]
    dist_info = tmp_path / "site" / f"my_stages-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
            for group, points in project["entry-points"].items()
        )
    )
    monkeypatch.syspath_prepend(str(root / "my-stages"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return root


def test_checkout_resources():
    """In the source checkout the config tree and the specs are the top-level folders; tokenizers/
    must never become a package (it would shadow Hugging Face's `tokenizers`)."""
    from importlib.metadata import version

    from curate.manifest import code_version
    from curate.resources import CONF_DIR, TOKENIZERS_DIR, source_checkout

    assert (source_checkout(), CONF_DIR, TOKENIZERS_DIR) == (REPO, REPO / "conf", REPO / "tokenizers")
    assert not (REPO / "tokenizers" / "__init__.py").exists()
    assert code_version() == version("thresher")  # the package's metadata: git only when asked
    assert code_version(git=True).startswith(version("thresher") + "+")  # then the commit


def test_user_stage_is_listed_and_documented(example, capsys):
    from curate.cli import main as thresher
    from curate.pipeline import build_stage
    from curate.stages import available_stages, stage_yaml

    assert "shouting" in available_stages() and "normalize" in available_stages()
    thresher(["stages"])
    assert "shouting                     my_stages.ShoutingFilter" in capsys.readouterr().out.splitlines()
    with pytest.raises(ConfigError, match=r"no stage 'my_stages.Nope'; available: .*shouting"):
        build_stage("x", {"_target_": "my_stages.Nope"})

    conf, docs = example / "my_conf", example / "STAGES.md"
    thresher(["stages", "--package", "my_stages", "--conf-dir", str(conf), "--docs", str(docs)])
    from my_stages import ShoutingFilter

    command = "thresher stages --package my_stages"
    assert (conf / "stage" / "shouting.yaml").read_text() == stage_yaml(ShoutingFilter, command)
    assert "Generated from my_stages/__init__.py by `thresher stages --package my_stages`" in stage_yaml(
        ShoutingFilter, command
    )
    assert "## `shouting` — ShoutingFilter (row stage, `my_stages`)" in docs.read_text()
    assert "| `max_upper_ratio` | `0.2` |" in docs.read_text()


def test_user_recipe_runs_with_built_in_stages(example, shared_data, tmp_path):
    from curate.api import run_recipe
    from curate.stages.__main__ import write_stage_files

    conf, web = example / "my_conf", web_sample(tmp_path / "web")
    write_stage_files("my_stages", str(conf), None)
    manifest = run_recipe(web, tmp_path / "out", RECIPE, *WORKERS, config_dirs=[conf])
    check_quiet_run(tmp_path / "out", rows_in=300)
    again = run_recipe(web, tmp_path / "out", RECIPE, *WORKERS, config_dirs=[conf])  # complete: nothing redone
    assert again.fingerprint == manifest.fingerprint and again.shards == manifest.shards
    with pytest.raises(ConfigError, match=r"^stages.shouting.max_upper_ratio: must be within \(0, 1\]$"):
        run_recipe(web, tmp_path / "bad", RECIPE, "stages.shouting.max_upper_ratio=3", config_dirs=[conf])


def test_config_dir_errors_are_one_line(example, tmp_path, capsys):
    """The pre-check composes with the user's folder as Hydra will (--config-dir, -cd, =, or
    hydra.searchpath), and its errors list the user's choices with Thresher's."""
    from curate.app import precheck
    from curate.stages.__main__ import write_stage_files

    conf = example / "my_conf"
    write_stage_files("my_stages", str(conf), None)
    base = [f"input.paths=[{tmp_path}]", f"output.dir={tmp_path / 'o'}"]

    def error(*args: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            precheck("curate", [*args, *base])
        assert exit_info.value.code == 2
        message = capsys.readouterr().err
        assert message.count("\n") == 1, message
        return message.strip()

    for flags in (
        ["--config-dir", str(conf)],
        ["-cd", str(conf)],
        [f"--config-dir={conf}"],
        [f"hydra.searchpath=[file://{conf}]"],
    ):
        precheck("curate", [*flags, RECIPE, *base])  # composes: no error, no exit
        assert error(*flags, "pipeline=web_quite").startswith(
            "error: pipeline: 'web_quite' is not one of: best_of_n, clean,"
        )
        assert error(*flags, "pipeline=web_quite").endswith(", web, web_heuristics, web_quiet")
    assert (
        error("-cd", str(conf), RECIPE, "stages.shouting.max_upper_ratioo=1")
        == "error: stages.shouting.max_upper_ratioo: unknown option; valid: max_upper_ratio"
    )
    assert ", shouting, " in error("-cd", str(conf), RECIPE, "+stage@stages.more=nope")
    assert (
        error("--config-dir", str(tmp_path / "nowhere"), RECIPE)
        == f"error: --config-dir: no such folder: {tmp_path / 'nowhere'}"
    )
    assert error(RECIPE).startswith(
        "error: pipeline: 'web_quiet' is not one of: best_of_n, clean,"
    )  # without the folder


def test_config_dirs_keep_a_single_searchpath_entry_whole(tmp_path):
    """`hydra.searchpath=file://x` (one folder, no brackets) is one entry after the --config-dir ones."""
    from curate.compose import with_config_dirs

    assert with_config_dirs(["a=1", "hydra.searchpath=file:///x/y"], [tmp_path]) == [
        "a=1",
        f"hydra.searchpath=['file://{tmp_path.resolve()}','file:///x/y']",
    ]
    assert with_config_dirs(["hydra.searchpath=[file:///x,pkg://y]"], [tmp_path]) == [
        f"hydra.searchpath=['file://{tmp_path.resolve()}','file:///x','pkg://y']"
    ]
