"""Language ID: throughput per core and accuracy of the `language` stage's backends, side by side.

Each configuration runs the real stage (`LanguageID.process`) in this process, on one core
(lingua's thread pool is held to one thread), over:
- web pages: c4_sample, dolma_test_data, dclm_quality_labels and the Wikipedia articles
  (benchmarks/corpora.py), repeated to `--repeat` passes; throughput = documents per CPU second;
- the UDHR (nltk_corpora/udhr.zip): every translation in a language lingua knows (Latin-1 or
  UTF-8 files), cut into documents of four lines; accuracy = the share identified as the file's
  language;
- the SMS Spam Collection: 5,574 short English texts; recall = the share kept as English.
Agreement: the share of keep/drop decisions (English, score > 0.65) equal to the previous
default's (lingua, low-accuracy mode, first 2,000 characters), on the web pages and the SMS.

    python benchmarks/language_bench.py [--repeat 3] [--out benchmarks/results/language.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import zipfile
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # lingua computes in a thread pool: one core, as a worker would
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora  # noqa: E402
import pyarrow as pa  # noqa: E402

from curate.stages.language import LanguageID  # noqa: E402
from curate.stats import StageStats  # noqa: E402

CONFIGS = {
    "lingua (previous default)": {"backend": "lingua", "fallback": None},
    "lingua, first 500 characters": {"backend": "lingua", "fallback": None, "max_chars": 500},
    "langid": {"backend": "langid", "fallback": None},
    "cld3 alone": {"backend": "cld3", "fallback": None},
    "cld3, lingua when unsure (default)": {},
}
REFERENCE = "lingua (previous default)"


def udhr() -> tuple[list[str], list[str]]:
    from lingua import Language

    codes = {language.name: language.iso_code_639_1.name.lower() for language in Language.all()}
    texts, truth = [], []
    with zipfile.ZipFile(corpora.DATA / "nltk_corpora" / "udhr.zip") as archive:
        for name in sorted(archive.namelist()):
            language, _, encoding = name.rsplit("/", 1)[-1].rpartition("-")
            code = codes.get(language.split("_")[0].upper())
            if code is None or encoding not in ("Latin1", "UTF8"):
                continue
            text = archive.read(name).decode("utf-8" if encoding == "UTF8" else "latin-1", errors="replace")
            lines = [line.strip() for line in text.splitlines() if len(line.split()) >= 5]
            for start in range(0, len(lines) - 3, 8):
                texts.append(" ".join(lines[start : start + 4]))
                truth.append(code)
    return texts, truth


def sms() -> list[str]:
    with gzip.open(corpora.DATA / "sms_spam" / "SMSSpamCollection.gz", "rt", encoding="utf-8", errors="replace") as f:
        return [line.split("\t", 1)[1].strip() for line in f if "\t" in line]


def identify(stage: LanguageID, texts: list[str]) -> tuple[list[tuple[str | None, float]], float]:
    """(lang, lang_score) per text through the stage, and the CPU seconds it took."""
    lang: list = []
    score: list = []
    started = time.process_time()
    for start in range(0, len(texts), 1000):
        part = texts[start : start + 1000]
        batch = pa.RecordBatch.from_pydict({"id": [str(i) for i in range(len(part))], "text": part})
        scored = stage.process(batch)
        rows = {}
        for table in (scored.kept, scored.dropped):
            if table is not None:
                rows.update(
                    zip(
                        table.column("id").to_pylist(),
                        zip(*(table.column(c).to_pylist() for c in ("lang", "lang_score"))),
                    )
                )
        for i in range(len(part)):
            lang.append(rows[str(i)][0])
            score.append(rows[str(i)][1])
    return list(zip(lang, score)), time.process_time() - started


def kept(predictions: list[tuple[str | None, float]]) -> list[bool]:
    return [lang == "en" and score > 0.65 for lang, score in predictions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the web pages for the throughput")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "language.json"))
    args = parser.parse_args()
    web = [d["text"] for d in corpora.documents(("web", "wiki"))]
    udhr_texts, udhr_truth = udhr()
    short = sms()
    print(
        f"{len(web)} web pages, {len(udhr_texts)} UDHR documents in {len(set(udhr_truth))} languages, {len(short)} SMS"
    )
    results: dict = {
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "web_pages": len(web),
        "udhr_documents": len(udhr_texts),
        "udhr_languages": len(set(udhr_truth)),
        "sms": len(short),
        "configs": {},
    }
    decisions: dict[str, dict[str, list[bool]]] = {}
    for name, options in CONFIGS.items():
        stage = LanguageID(**options)
        stage.validate()
        stage.setup()
        stage.bind_stats(StageStats())
        identify(stage, web[:50])  # warm up: models load lazily
        seconds = 0.0
        for _ in range(args.repeat):
            web_predictions, spent = identify(stage, web)
            seconds += spent
        stats = StageStats()
        stage.bind_stats(stats)
        udhr_predictions, _ = identify(stage, udhr_texts)
        sms_predictions, _ = identify(stage, short)
        decisions[name] = {"web": kept(web_predictions), "sms": kept(sms_predictions)}
        reference = decisions.get(REFERENCE, decisions[name])
        result = {
            "options": options,
            "docs_per_cpu_second": round(len(web) * args.repeat / seconds, 1),
            "web_kept": sum(decisions[name]["web"]),
            "udhr_accuracy": round(sum(p[0] == t for p, t in zip(udhr_predictions, udhr_truth)) / len(udhr_truth), 4),
            "wikipedia_kept": sum(decisions[name]["web"][-30:]),
            "sms_kept_as_english": round(sum(decisions[name]["sms"]) / len(short), 4),
            "agreement_web": round(sum(a == b for a, b in zip(decisions[name]["web"], reference["web"])) / len(web), 4),
            "agreement_sms": round(
                sum(a == b for a, b in zip(decisions[name]["sms"], reference["sms"])) / len(short), 4
            ),
            "fallback_share_udhr_sms": round(stats.counters.get("fallback", 0) / (len(udhr_texts) + len(short)), 4),
        }
        results["configs"][name] = result
        print(f"{name:38s} {json.dumps(result)}")
        stage.teardown()
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["date"] = time.strftime("%Y-%m-%d %H:%M")
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"load {results['load_before']} -> {results['load_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
