"""Prompt templates: Jinja files in a folder (`curate/prompts/<name>/`, package data, or a folder of
the user's own), rendered in a sandbox: a prompt folder is configuration and must not reach Python
internals through a template."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"


@lru_cache(maxsize=8)
def template_environment(folder: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(folder), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


def template_folder(name: str, files: Sequence[str]) -> Path:
    """A template set: a folder under curate/prompts/ by name, or a folder path, holding `files`.
    Raises ValueError("templates: ...") naming what is missing."""
    folder = PROMPTS_DIR / name if (PROMPTS_DIR / name).is_dir() else Path(name).expanduser()
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise ValueError(
            f"templates: '{name}' is not a prompt folder with {', '.join(files)} (missing: {', '.join(missing)})"
        )
    return folder


def render(folder: Path, template: str, **variables) -> str:
    return template_environment(str(folder)).get_template(template).render(**variables)
