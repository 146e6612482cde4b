"""Where Thresher's data folders are: the Hydra config tree (`conf/`) and the tokenizer specs
(`tokenizers/`). Every caller asks here; nothing else walks up from a source file.

- In a source checkout (editable install, or the checkout on PYTHONPATH) they are the folders at
  the top of the repository, the ones developers edit.
- In an installed wheel they are package data inside `curate/` (`curate/conf`, `curate/tokenizers`:
  setup.py maps the top-level folders there), found next to the imported `curate` package.

A wheel is always unpacked on disk by pip, and Hydra needs a real folder, so these are plain paths.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_checkout() -> Path | None:
    """The repository root when `curate` is imported from a source checkout; None when installed.

    A checkout has pyproject.toml and conf/ beside `curate/`; site-packages never has both (and
    its `tokenizers/` is Hugging Face's package, so the test must not be a bare folder check).
    """
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "conf").is_dir() else None


DATA_ROOT = source_checkout() or PACKAGE_DIR
CONF_DIR = DATA_ROOT / "conf"  # the Hydra config tree of the curate and train apps
TOKENIZERS_DIR = DATA_ROOT / "tokenizers"  # tokenizer specs (<name>.yaml); never an importable package
