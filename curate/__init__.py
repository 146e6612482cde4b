"""Thresher's curation engine: readers, stages, executors and writers for LLM training data."""

__version__ = "0.1.0"
