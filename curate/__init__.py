"""Thresher's curation engine: readers, stages, executors and writers for LLM training data."""

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here
