"""A recall test set for decontamination: evaluation items planted in training text the way
contamination happens, and real text that holds none of them.

Evaluation items: the first 200 GSM8K questions (AlpacaDataCleaned's copy of the train split) and
the first 150 of Self-Instruct's 252 user-oriented instructions (instruction, then input).
Training documents, one per item and variant:
- `verbatim`: the item alone (a training prompt equal to the test item);
- `embedded`: the item between two passages of real web text (C4), ~100 words each;
- `rewrapped`: embedded, re-flowed: a line break every 7 words, each line indented;
- `paraphrased`: embedded, lightly edited: the case changed (upper, title or lower), sentence
  punctuation changed (periods to semicolons, commas dropped, quotes added), whitespace doubled;
- `partial`: the first 60% of the item's words, embedded.
And, neither positive nor negative (where the rules differ): `fragment`, 10 consecutive words
from the middle of an item of at least 30 words, embedded (a quoted phrase: under a third of it).
Negatives (no evaluation item in them):
- `clean`: C4 passages alone;
- `neighbours`: the same benchmarks' other items (GSM8K questions 200-399, Self-Instruct's
  instructions 150-251): the same style and templates, other content.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

POSITIVE = ("verbatim", "embedded", "rewrapped", "paraphrased", "partial")
NEGATIVE = ("clean", "neighbours")
VARIANTS = POSITIVE + ("fragment",) + NEGATIVE


def benchmarks(shared_data: Path) -> dict[str, list[str]]:
    with gzip.open(shared_data / "alpacadatacleaned_extensions" / "gsm_8k_train.json.gz", "rt") as handle:
        gsm8k = [r["instruction"].strip() for r in json.load(handle)[:400]]
    with gzip.open(shared_data / "self_instruct" / "davinci_predictions.jsonl.gz", "rt") as handle:
        records = [json.loads(line) for line in handle]
    user_oriented = [(r["instruction"].strip() + "\n" + r["input"].strip()).strip() for r in records]
    return {"gsm8k": gsm8k, "self_instruct": user_oriented}


def passages(shared_data: Path, words: int = 100) -> list[str]:
    with gzip.open(shared_data / "c4_sample" / "c4_demo.jsonl.gz", "rt") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    out = []
    for text in texts:
        tokens = text.split()
        out += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens) - words + 1, words)]
    return out


def rewrap(text: str) -> str:
    words = text.split()
    return "\n".join("    " + " ".join(words[i : i + 7]) for i in range(0, len(words), 7))


def paraphrase(text: str, rng: random.Random) -> str:
    case = rng.choice([str.upper, str.title, str.lower])
    text = case(text).replace(".", ";").replace(",", "")
    text = re.sub(r"\?", " ?", text)
    text = '"' + text + '"'
    return re.sub(r" ", lambda _: rng.choice([" ", "  ", " \t"]), text)


def build(shared_data: Path, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(evaluation records {benchmark, text}, training documents {id, text, variant, benchmark})."""
    rng = random.Random(seed)
    items = benchmarks(shared_data)
    split = {"gsm8k": 200, "self_instruct": 150}
    fillers = passages(shared_data)
    rng.shuffle(fillers)
    filler = iter(fillers * 4)
    evaluation, training = [], []
    for name, texts in items.items():
        for index, item in enumerate(texts[: split[name]]):
            evaluation.append({"benchmark": name, "text": item})
            words = item.split()
            variants = {
                "verbatim": item,
                "embedded": f"{next(filler)} {item} {next(filler)}",
                "rewrapped": f"{next(filler)}\n{rewrap(item)}\n{next(filler)}",
                "paraphrased": f"{next(filler)} {paraphrase(item, rng)} {next(filler)}",
                "partial": f"{next(filler)} {' '.join(words[: max(1, round(0.6 * len(words)))])} {next(filler)}",
            }
            if len(words) >= 30:
                variants["fragment"] = f"{next(filler)} {' '.join(words[10:20])} {next(filler)}"
            for variant, text in variants.items():
                training.append(
                    {"id": f"{name}-{index}-{variant}", "text": text, "variant": variant, "benchmark": name}
                )
        for index, item in enumerate(texts[split[name] :]):
            training.append({"id": f"{name}-n{index}", "text": item, "variant": "neighbours", "benchmark": name})
    for index in range(300):
        training.append({"id": f"clean-{index}", "text": next(filler), "variant": "clean", "benchmark": "c4"})
    return evaluation, training


def rates(flagged: dict[str, bool], training: list[dict]) -> dict[str, float]:
    """The share of each variant's documents that a rule flagged: recall for the positive
    variants, false-positive rate for the negative ones."""
    out = {}
    for variant in VARIANTS:
        ids = [d["id"] for d in training if d["variant"] == variant]
        out[variant] = round(sum(flagged[i] for i in ids) / len(ids), 4)
    return out
