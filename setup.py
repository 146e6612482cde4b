"""Which files the distribution holds; the rest of its metadata is in pyproject.toml.

Code: the packages `curate` and `train` and their subpackages (found, so a new subpackage needs no
entry here). Data: the top-level `conf/` (the Hydra config tree) and `tokenizers/` (tokenizer specs)
ship inside `curate` as `curate/conf` and `curate/tokenizers`, where `curate/resources.py` finds
them in an installed wheel (in a source checkout it finds the top-level folders). Neither folder
becomes importable from the top level: a `tokenizers` package would shadow Hugging Face's.
"""

from setuptools import find_namespace_packages, setup

DATA_FOLDERS = {"curate.conf": "conf", "curate.tokenizers": "tokenizers"}

# Folders of data files are listed as (namespace) packages too, as setuptools wants them.
packages = find_namespace_packages(include=["curate", "curate.*", "train", "train.*"])
for package, folder in DATA_FOLDERS.items():
    packages += [package] + [f"{package}.{sub}" for sub in find_namespace_packages(where=folder)]

setup(
    packages=packages,
    package_dir=DATA_FOLDERS,
    package_data={
        "curate": ["prompts/*/*.j2", "report/*.j2"],
        "curate.conf": ["**/*.yaml"],
        "curate.tokenizers": ["**/*.yaml", "**/*.model", "**/*.json"],  # specs and trained artifacts
    },
)
