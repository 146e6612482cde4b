"""Agreement of Thresher's Gopher / C4 / FineWeb rules with datatrove's, on real web samples.

For each rule set, both implementations run at the same (published default) thresholds on every
document of c4_sample, dolma_test_data and dclm_quality_labels (../shared/data), and we count:
- decision agreement: both keep or both drop;
- reason agreement: same decision and, when dropped, the same first rule (datatrove's names
  mapped to ours);
- rule by rule: each rule alone (every other rule of the set disabled), in both implementations;
- C4's rewritten text, for documents both keep;
- the whole `web_heuristics` chain (Gopher repetition, Gopher quality, C4, FineWeb);
- a threshold sweep: each numeric rule alone at the 10th, 50th and 90th percentiles of its
  score on these documents (so that every rule fires on a real share of them, boundaries
  included), in both implementations;
- long, line-heavy and code-like documents (Wikipedia, Stack Exchange Q&A, unarXive and LaTeX
  papers, Python source: benchmarks/corpora.py): each rule set with all its rules, and the chain.
Disagreeing documents are listed (id, both reasons, the score) in the JSON for inspection.

    python benchmarks/quality_agreement.py [--long-only] [--out benchmarks/results/quality_agreement.json]

Needs datatrove and spacy (pip install -e .[bench]).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora  # noqa: E402

from curate.stages.c4 import C4Filter  # noqa: E402
from curate.stages.fineweb import FineWebQuality  # noqa: E402
from curate.stages.gopher import GopherQuality, GopherRepetition  # noqa: E402

# datatrove's reason names -> ours
REASONS = {
    "gopher_short_doc": "gopher_short_doc",
    "gopher_long_doc": "gopher_long_doc",
    "gopher_below_avg_threshold": "gopher_short_words",
    "gopher_above_avg_threshold": "gopher_long_words",
    "gopher_too_many_hashes": "gopher_too_many_hashes",
    "gopher_too_many_ellipsis": "gopher_too_many_ellipsis",
    "gopher_too_many_bullets": "gopher_too_many_bullets",
    "gopher_too_many_end_ellipsis": "gopher_too_many_end_ellipsis",
    "gopher_below_alpha_threshold": "gopher_few_alpha_words",
    "gopher_enough_stop_words": "gopher_few_stop_words",
    "dup_para_frac": "gopher_dup_para_frac",
    "dup_para_char_frac": "gopher_dup_para_char_frac",
    "dup_line_frac": "gopher_dup_line_frac",
    "dup_line_char_frac": "gopher_dup_line_char_frac",
    **{f"top_{n}_gram": f"gopher_top_{n}gram" for n in (2, 3, 4)},
    **{f"duplicated_{n}_n_grams": f"gopher_dup_{n}gram" for n in range(5, 11)},
    "lorem_ipsum": "c4_lorem_ipsum",
    "curly_bracket": "c4_curly_bracket",
    "too_few_sentences": "c4_too_few_sentences",
    "line_punct_ratio": "fineweb_line_punct_ratio",
    "short_line_ratio": "fineweb_short_line_ratio",
    "char_dup_ratio": "fineweb_char_dup_ratio",
    "list_ratio": "fineweb_list_ratio",
    "empty": "fineweb_empty",
}


def load_documents() -> list[dict]:
    return corpora.documents(("web",))


# --------------------------------------------------------------------------------------------
# The rule sets, each as (datatrove filter factory, our stage factory), with per-rule variants.

GOPHER_QUALITY_RULES = {  # our reason -> (datatrove option(s), our option(s))
    "gopher_short_doc": ["min_doc_words"],
    "gopher_long_doc": ["max_doc_words"],
    "gopher_short_words": ["min_avg_word_length"],
    "gopher_long_words": ["max_avg_word_length"],
    "gopher_too_many_hashes+ellipsis": ["max_symbol_word_ratio"],
    "gopher_too_many_bullets": ["max_bullet_lines_ratio"],
    "gopher_too_many_end_ellipsis": ["max_ellipsis_lines_ratio"],
    "gopher_few_alpha_words": [("max_non_alpha_words_ratio", "min_alpha_words_ratio")],
    "gopher_few_stop_words": ["min_stop_words"],
}
REP_OPTIONS = {
    "gopher_dup_para_frac": "dup_para_frac",
    "gopher_dup_para_char_frac": "dup_para_char_frac",
    "gopher_dup_line_frac": "dup_line_frac",
    "gopher_dup_line_char_frac": "dup_line_char_frac",
}
TOP = {2: 0.2, 3: 0.18, 4: 0.16}
DUP = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


def gopher_quality_variants():
    from datatrove.pipeline.filters import GopherQualityFilter

    dt_all = [
        "min_doc_words",
        "max_doc_words",
        "min_avg_word_length",
        "max_avg_word_length",
        "max_symbol_word_ratio",
        "max_bullet_lines_ratio",
        "max_ellipsis_lines_ratio",
        "max_non_alpha_words_ratio",
        "min_stop_words",
    ]
    ours_all = [o if isinstance(o, str) else o[1] for opts in GOPHER_QUALITY_RULES.values() for o in opts]
    yield "all", GopherQualityFilter(), GopherQuality()
    for rule, options in GOPHER_QUALITY_RULES.items():
        dt_keep = {o if isinstance(o, str) else o[0] for o in options}
        our_keep = {o if isinstance(o, str) else o[1] for o in options}
        dt = GopherQualityFilter(**{o: None for o in dt_all if o not in dt_keep})
        ours = GopherQuality(**{o: None for o in ours_all if o not in our_keep})
        yield rule, dt, ours


def gopher_repetition_variants():
    from datatrove.pipeline.filters import GopherRepetitionFilter

    off_ours = {
        **{v: None for v in REP_OPTIONS.values()},
        **{f"top_{n}gram_char_frac": None for n in TOP},
        **{f"dup_{n}gram_char_frac": None for n in DUP},
    }
    off_dt = {**{v: None for v in REP_OPTIONS.values()}, "top_n_grams": (), "dup_n_grams": ()}
    yield "all", GopherRepetitionFilter(), GopherRepetition()
    for rule, option in REP_OPTIONS.items():
        yield (
            rule,
            GopherRepetitionFilter(**{**off_dt, option: getattr(GopherRepetitionFilter(), option)}),
            GopherRepetition(**{**off_ours, option: getattr(GopherRepetition(), option)}),
        )
    for n, frac in TOP.items():
        yield (
            f"gopher_top_{n}gram",
            GopherRepetitionFilter(**{**off_dt, "top_n_grams": ((n, frac),)}),
            GopherRepetition(**{**off_ours, f"top_{n}gram_char_frac": frac}),
        )
    for n, frac in DUP.items():
        yield (
            f"gopher_dup_{n}gram",
            GopherRepetitionFilter(**{**off_dt, "dup_n_grams": ((n, frac),)}),
            GopherRepetition(**{**off_ours, f"dup_{n}gram_char_frac": frac}),
        )


def c4_variants():
    from datatrove.pipeline.filters import C4QualityFilter

    yield "all", C4QualityFilter(), C4Filter()
    doc_rules = {"c4_lorem_ipsum": "filter_lorem_ipsum", "c4_curly_bracket": "filter_curly_bracket"}
    for rule, option in doc_rules.items():
        other = [o for o in doc_rules.values() if o != option]
        yield (
            rule,
            C4QualityFilter(min_num_sentences=-1, **{o: False for o in other}),
            C4Filter(min_num_sentences=None, drop_empty=False, **{o: False for o in other}),
        )
    off = {"filter_lorem_ipsum": False, "filter_curly_bracket": False}
    yield "c4_too_few_sentences", C4QualityFilter(**off), C4Filter(**off)


def fineweb_variants():
    from datatrove.pipeline.filters import FineWebQualityFilter

    off_dt = {
        "line_punct_thr": 0.0,
        "short_line_thr": 1.0,
        "char_duplicates_ratio": 1.0,
        "new_line_ratio": float("inf"),
    }
    off_ours = {"line_punct_thr": None, "short_line_thr": None, "char_duplicates_ratio": None, "new_line_ratio": None}
    defaults = {"line_punct_thr": 0.12, "short_line_thr": 0.67, "char_duplicates_ratio": 0.01, "new_line_ratio": 0.3}
    yield "all", FineWebQualityFilter(), FineWebQuality()
    names = {
        "line_punct_thr": "fineweb_line_punct_ratio",
        "short_line_thr": "fineweb_short_line_ratio",
        "char_duplicates_ratio": "fineweb_char_dup_ratio",
        "new_line_ratio": "fineweb_list_ratio",
    }
    for option, rule in names.items():
        yield (
            rule,
            FineWebQualityFilter(**{**off_dt, option: defaults[option]}),
            FineWebQuality(**{**off_ours, option: defaults[option]}),
        )


RULE_SETS = {
    "gopher_repetition": gopher_repetition_variants,
    "gopher_quality": gopher_quality_variants,
    "c4": c4_variants,
    "fineweb_quality": fineweb_variants,
}


# --------------------------------------------------------------------------------------------


def run_datatrove(dt_filter, texts: list[str]) -> tuple[list[str | None], list[str]]:
    from datatrove.data import Document

    reasons, outputs = [], []
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(i))
        result = dt_filter.filter(doc)
        keep, reason = (result, None) if isinstance(result, bool) else result
        reasons.append(None if keep else REASONS.get(reason, reason or "dropped"))
        outputs.append(doc.text)
    return reasons, outputs


def run_ours(stage, texts: list[str]) -> tuple[list[str | None], list[str]]:
    stage.setup()
    batch = pa.RecordBatch.from_pydict({"id": [str(i) for i in range(len(texts))], "text": texts})
    result = stage.process(batch)
    reasons: dict[str, str | None] = {i: None for i in result.kept.column("id").to_pylist()}
    outputs = dict(zip(result.kept.column("id").to_pylist(), result.kept.column("text").to_pylist()))
    if result.dropped is not None:
        for i, reason in zip(result.dropped.column("id").to_pylist(), result.dropped.column("drop_reason").to_pylist()):
            reasons[i] = reason
    ids = [str(i) for i in range(len(texts))]
    return [reasons[i] for i in ids], [outputs.get(i, texts[int(i)]) for i in ids]


def compare(docs, dt_reasons, our_reasons, rule: str) -> dict:
    n = len(docs)
    decision = sum((a is None) == (b is None) for a, b in zip(dt_reasons, our_reasons))
    reason = sum(a == b for a, b in zip(dt_reasons, our_reasons))
    result = {
        "documents": n,
        "datatrove_dropped": sum(a is not None for a in dt_reasons),
        "ours_dropped": sum(b is not None for b in our_reasons),
        "decision_agreement": round(decision / n, 4),
        "reason_agreement": round(reason / n, 4),
        "disagreements": [
            {"id": d["id"], "datatrove": a, "ours": b} for d, a, b in zip(docs, dt_reasons, our_reasons) if a != b
        ],
    }
    if rule != "all":
        result["rule"] = rule
    return result


def chain(docs, stages_dt, stages_ours) -> dict:
    texts = [d["text"] for d in docs]
    dt_reasons: list[str | None] = [None] * len(texts)
    our_reasons: list[str | None] = [None] * len(texts)
    dt_texts, our_texts = list(texts), list(texts)
    for dt_filter, stage in zip(stages_dt, stages_ours):
        alive = [i for i, r in enumerate(dt_reasons) if r is None]
        reasons, outputs = run_datatrove(dt_filter, [dt_texts[i] for i in alive])
        for i, r, t in zip(alive, reasons, outputs):
            dt_reasons[i], dt_texts[i] = r, t
        alive = [i for i, r in enumerate(our_reasons) if r is None]
        reasons, outputs = run_ours(stage, [our_texts[i] for i in alive])
        for i, r, t in zip(alive, reasons, outputs):
            our_reasons[i], our_texts[i] = r, t
    result = compare(docs, dt_reasons, our_reasons, "all")
    both = [i for i in range(len(texts)) if dt_reasons[i] is None and our_reasons[i] is None]
    result["kept_text_identical"] = sum(dt_texts[i] == our_texts[i] for i in both)
    result["kept_both"] = len(both)
    return result


# rule -> (our stage class, our option, datatrove filter class, datatrove option, our score column)
SWEEP = [
    ("gopher_short_doc", "GopherQuality", "min_doc_words", "GopherQualityFilter", "min_doc_words", "gopher_words", int),
    ("gopher_long_doc", "GopherQuality", "max_doc_words", "GopherQualityFilter", "max_doc_words", "gopher_words", int),
    (
        "gopher_short_words",
        "GopherQuality",
        "min_avg_word_length",
        "GopherQualityFilter",
        "min_avg_word_length",
        "gopher_mean_word_length",
        float,
    ),
    (
        "gopher_long_words",
        "GopherQuality",
        "max_avg_word_length",
        "GopherQualityFilter",
        "max_avg_word_length",
        "gopher_mean_word_length",
        float,
    ),
    (
        "gopher_too_many_hashes",
        "GopherQuality",
        "max_symbol_word_ratio",
        "GopherQualityFilter",
        "max_symbol_word_ratio",
        "gopher_hash_ratio",
        float,
    ),
    (
        "gopher_too_many_bullets",
        "GopherQuality",
        "max_bullet_lines_ratio",
        "GopherQualityFilter",
        "max_bullet_lines_ratio",
        "gopher_bullet_lines",
        float,
    ),
    (
        "gopher_too_many_end_ellipsis",
        "GopherQuality",
        "max_ellipsis_lines_ratio",
        "GopherQualityFilter",
        "max_ellipsis_lines_ratio",
        "gopher_end_ellipsis_lines",
        float,
    ),
    (
        "gopher_few_alpha_words",
        "GopherQuality",
        "min_alpha_words_ratio",
        "GopherQualityFilter",
        "max_non_alpha_words_ratio",
        "gopher_alpha_words",
        float,
    ),
    (
        "gopher_few_stop_words",
        "GopherQuality",
        "min_stop_words",
        "GopherQualityFilter",
        "min_stop_words",
        "gopher_stop_words",
        int,
    ),
    *[
        (f"gopher_{name}", "GopherRepetition", name, "GopherRepetitionFilter", name, f"gopher_{name}", float)
        for name in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")
    ],
    *[
        (
            f"gopher_top_{n}gram",
            "GopherRepetition",
            f"top_{n}gram_char_frac",
            "GopherRepetitionFilter",
            ("top_n_grams", n),
            f"gopher_top_{n}gram_frac",
            float,
        )
        for n in (2, 3, 4)
    ],
    *[
        (
            f"gopher_dup_{n}gram",
            "GopherRepetition",
            f"dup_{n}gram_char_frac",
            "GopherRepetitionFilter",
            ("dup_n_grams", n),
            f"gopher_dup_{n}gram_frac",
            float,
        )
        for n in range(5, 11)
    ],
    (
        "c4_too_few_sentences",
        "C4Filter",
        "min_num_sentences",
        "C4QualityFilter",
        "min_num_sentences",
        "c4_sentences",
        int,
    ),
    (
        "fineweb_line_punct_ratio",
        "FineWebQuality",
        "line_punct_thr",
        "FineWebQualityFilter",
        "line_punct_thr",
        "fineweb_line_punct_ratio",
        float,
    ),
    (
        "fineweb_short_line_ratio",
        "FineWebQuality",
        "short_line_thr",
        "FineWebQualityFilter",
        "short_line_thr",
        "fineweb_short_line_ratio",
        float,
    ),
    (
        "fineweb_char_dup_ratio",
        "FineWebQuality",
        "char_duplicates_ratio",
        "FineWebQualityFilter",
        "char_duplicates_ratio",
        "fineweb_char_dup_ratio",
        float,
    ),
    (
        "fineweb_list_ratio",
        "FineWebQuality",
        "new_line_ratio",
        "FineWebQualityFilter",
        "new_line_ratio",
        "fineweb_newline_ratio",
        float,
    ),
]


def sweep(docs: list[dict]) -> dict:
    """Each numeric rule alone at three percentiles of its score; decisions compared."""
    import numpy as np
    from datatrove.pipeline import filters as dt

    from curate.stages.rules import only_rule as isolated

    ours_cls = {
        "GopherQuality": GopherQuality,
        "GopherRepetition": GopherRepetition,
        "C4Filter": C4Filter,
        "FineWebQuality": FineWebQuality,
    }
    texts = [d["text"] for d in docs]
    batch = pa.RecordBatch.from_pydict({"id": [str(i) for i in range(len(texts))], "text": texts})
    scores = {}
    for name, cls in ours_cls.items():
        stage = cls()
        stage.setup()
        scored = stage.score(batch) if name != "C4Filter" else stage._clean_batch(batch)[1]
        scores.update({k: np.asarray(v, dtype=float) for k, v in scored.items()})
    dt_off = {
        "GopherQualityFilter": {
            k: None
            for k in (
                "min_doc_words",
                "max_doc_words",
                "min_avg_word_length",
                "max_avg_word_length",
                "max_symbol_word_ratio",
                "max_bullet_lines_ratio",
                "max_ellipsis_lines_ratio",
                "max_non_alpha_words_ratio",
                "min_stop_words",
            )
        },
        "GopherRepetitionFilter": {
            "dup_para_frac": None,
            "dup_para_char_frac": None,
            "dup_line_frac": None,
            "dup_line_char_frac": None,
            "top_n_grams": (),
            "dup_n_grams": (),
        },
        "C4QualityFilter": {"filter_lorem_ipsum": False, "filter_curly_bracket": False},
        "FineWebQualityFilter": {
            "line_punct_thr": 0.0,
            "short_line_thr": 1.0,
            "char_duplicates_ratio": 1.0,
            "new_line_ratio": float("inf"),
        },
    }
    variants = []
    for rule, our_cls, our_opt, dt_cls, dt_opt, column, kind in SWEEP:
        for q in (10, 50, 90):
            value = kind(np.percentile(scores[column], q))
            if not value:
                continue  # datatrove reads a 0 threshold as "rule off"
            dt_kwargs = dict(dt_off[dt_cls])
            if isinstance(dt_opt, tuple):
                dt_kwargs[dt_opt[0]] = ((dt_opt[1], value),)
            else:
                dt_kwargs[dt_opt] = value
            extra = {"drop_empty": False} if our_cls == "C4Filter" else {}
            if our_cls == "C4Filter":
                ours = C4Filter(filter_lorem_ipsum=False, filter_curly_bracket=False, min_num_sentences=value)
            else:
                ours = isolated(ours_cls[our_cls], our_opt, **{our_opt: value}, **extra)
            variants.append((rule, q, value, getattr(dt, dt_cls)(**dt_kwargs), ours))
    from datatrove.data import Document

    # document-major for datatrove: its word-split cache then serves every variant of a document
    dt_all: list[list[str | None]] = [[None] * len(texts) for _ in variants]
    for i, text in enumerate(texts):
        for v, (_, _, _, dt_filter, _) in enumerate(variants):
            result = dt_filter.filter(Document(text=text, id=str(i)))
            keep, reason = (result, None) if isinstance(result, bool) else result
            dt_all[v][i] = None if keep else REASONS.get(reason, reason or "dropped")
    results = {}
    for (rule, q, value, _, ours), dt_reasons in zip(variants, dt_all):
        our_reasons, _ = run_ours(ours, texts)
        entry = compare(docs, dt_reasons, our_reasons, rule)
        entry.update(percentile=q, threshold=value)
        entry.pop("rule")
        results.setdefault(rule, []).append(entry)
        print(
            f"sweep {rule:30s} p{q:<3d} threshold {value:<10.4g} decision {entry['decision_agreement']:.4f}  "
            f"dropped dt {entry['datatrove_dropped']:4d} ours {entry['ours_dropped']:4d}"
        )
    return results


def long_documents() -> dict:
    """Each rule set with all its rules, and the whole chain, on the long, line-heavy and code-like
    documents (Wikipedia, Stack Exchange Q&A, papers, Python source: benchmarks/corpora.py)."""
    docs = corpora.documents(("wiki", "qa", "paper", "code"))
    texts = [d["text"] for d in docs]
    report: dict = {"documents": len(docs), "kinds": dict(Counter(d["kind"] for d in docs)), "rule_sets": {}}
    for name, variants in RULE_SETS.items():
        rule, dt_filter, stage = next(iter(variants()))  # every rule of the set
        entry = compare(docs, run_datatrove(dt_filter, texts)[0], run_ours(stage, texts)[0], rule)
        report["rule_sets"][name] = entry
        print(
            f"long documents {name:18s} decision {entry['decision_agreement']:.4f} reason {entry['reason_agreement']:.4f}"
        )
    report["web_heuristics_chain"] = entry = web_heuristics_chain(docs)
    print(f"long documents chain decision {entry['decision_agreement']:.4f} reason {entry['reason_agreement']:.4f}")
    return report


def web_heuristics_chain(docs: list[dict]) -> dict:
    """The whole `web_heuristics` chain, datatrove's filters against ours, on `docs`."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return chain(
        docs,
        [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()],
        [GopherRepetition(), GopherQuality(), C4Filter(), FineWebQuality()],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_agreement.json"))
    parser.add_argument("--long-only", action="store_true", help="only the long documents; keep the rest of --out")
    args = parser.parse_args()
    if args.long_only:
        report = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        report["long_documents"] = long_documents()
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        return
    docs = load_documents()
    texts = [d["text"] for d in docs]
    started = time.time()
    report: dict = {"documents": len(docs), "sources": dict(Counter(d["source"] for d in docs)), "rule_sets": {}}
    for name, variants in RULE_SETS.items():
        report["rule_sets"][name] = {}
        for rule, dt_filter, stage in variants():
            dt_reasons, dt_out = run_datatrove(dt_filter, texts)
            our_reasons, our_out = run_ours(stage, texts)
            entry = compare(docs, dt_reasons, our_reasons, rule)
            if name == "c4" and rule == "all":
                both = [i for i in range(len(texts)) if dt_reasons[i] is None and our_reasons[i] is None]
                entry["kept_text_identical"] = sum(dt_out[i] == our_out[i] for i in both)
                entry["kept_both"] = len(both)
            report["rule_sets"][name][rule] = entry
            print(
                f"{name:18s} {rule:34s} decision {entry['decision_agreement']:.4f} reason "
                f"{entry['reason_agreement']:.4f}  dropped dt {entry['datatrove_dropped']:4d} ours {entry['ours_dropped']:4d}"
            )
    report["web_heuristics_chain"] = entry = web_heuristics_chain(docs)
    print(
        f"{'web_heuristics':18s} {'chain':34s} decision {entry['decision_agreement']:.4f} reason "
        f"{entry['reason_agreement']:.4f}  kept text identical {entry['kept_text_identical']}/{entry['kept_both']}"
    )
    report["threshold_sweep"] = sweep(docs)
    runs = [e for entries in report["threshold_sweep"].values() for e in entries]
    report["threshold_sweep_summary"] = {
        "runs": len(runs),
        "documents_x_runs": sum(e["documents"] for e in runs),
        "decision_disagreements": sum(round((1 - e["decision_agreement"]) * e["documents"]) for e in runs),
        "min_decision_agreement": min(e["decision_agreement"] for e in runs),
    }
    print("sweep summary", report["threshold_sweep_summary"])
    report["long_documents"] = long_documents()
    report["seconds"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
