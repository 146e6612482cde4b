"""Deduplication: exact_dedup and minhash_dedup through the real engine and config tree, the
vectorised MinHash against datasketch bit for bit, determinism, resume after a kill, reports."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import SHARED_DATA, compose, curate, kill_after_tasks, read_dataset, write_jsonl
from datasketch import MinHash

from curate.dedup.clusters import components
from curate.dedup.minhash import candidate_probability, optimal_bands, permutations, signatures
from curate.dedup.pairs import jaccard
from curate.dedup.text import TextNormalization, char_shingles, shingle_hash_reference, word_shingles
from curate.errors import ConfigError
from curate.manifest import Manifest
from curate.pipeline import build_pipeline
from curate.schema import KINDS


def base_texts(count: int, words: int = 120, seed: int = 0) -> list[str]:
    """Distinct documents of real English words (from the C4 sample) in random order."""
    path = SHARED_DATA / "c4_sample" / "c4_demo.jsonl.gz"
    if path.is_file():
        with gzip.open(path, "rt") as handle:
            vocabulary = sorted({w for line in handle for w in json.loads(line)["text"].split() if w.isalpha()})
    else:  # still real words: the Python standard library's own identifiers
        vocabulary = sorted({w for w in Path(os.__file__).read_text().split() if w.isalpha()})
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocabulary) for _ in range(words)) for _ in range(count)]


def reference_words(text: str) -> list[str]:
    return TextNormalization().normalize(pa.array([text])).to_pylist()[0].split()


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = reference_words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} if len(words) >= n else {tuple(words)}


def true_jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def with_jaccard(text: str, target: float, rng: random.Random, vocabulary: list[str]) -> str:
    """A copy of `text` whose word 5-gram Jaccard with it is close to `target` (tail replaced)."""
    words = text.split()
    shingles = len(words) - 4
    # Replacing the last k words keeps (shingles - k) shingles and adds k new ones: J = (s-k)/(s+k).
    k = round(shingles * (1 - target) / (1 + target))
    return " ".join(words[: len(words) - k] + [rng.choice(vocabulary) + "q" for _ in range(k)])


# --------------------------------------------------------------------------------------------
# The building blocks


def test_vectorised_shingles_equal_the_plain_definition():
    texts = [
        "Hello, World! This is a test of the emergency broadcast system.",
        "",
        None,
        "one two",
        "Ｆｕｌｌ-width ﬁ ligature…  and\u00a0spaces",
        "  x y z w v u  ",
        "a b c d e",
    ]
    normalized = TextNormalization().normalize(pa.array(texts, pa.string()))
    assert normalized.to_pylist()[4] == "full width fi ligature and spaces"
    words = word_shingles(normalized, 5)
    chars = char_shingles(normalized, 3)
    for i, text in enumerate(normalized.to_pylist()):
        tokens = text.split()
        grams = [tuple(tokens[j : j + 5]) for j in range(len(tokens) - 4)] or ([tuple(tokens)] if tokens else [])
        assert words.hashes[words.offsets[i] : words.offsets[i + 1]].tolist() == [
            shingle_hash_reference(g) for g in grams
        ]
        grams = [tuple(text[j : j + 3]) for j in range(len(text) - 2)] or ([tuple(text)] if text else [])
        assert chars.hashes[chars.offsets[i] : chars.offsets[i + 1]].tolist() == [
            shingle_hash_reference(g, chars=True) for g in grams
        ]


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7), (1, 3)])
def test_signatures_are_bit_identical_to_datasketch(num_perm, seed):
    texts = base_texts(20, words=60, seed=seed) + ["short text", "", "one"] + [" ".join(["repeat"] * 9000)]
    normalized = TextNormalization().normalize(pa.array(texts))
    shingles = word_shingles(normalized, 5)
    ours = signatures(shingles.hashes & np.uint64(0xFFFFFFFF), shingles.offsets, *permutations(num_perm, seed))
    for i, text in enumerate(normalized.to_pylist()):
        tokens = text.split()
        grams = [tuple(tokens[j : j + 5]) for j in range(len(tokens) - 4)] or ([tuple(tokens)] if tokens else [])
        sketch = MinHash(
            num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=lambda g: shingle_hash_reference(g) & 0xFFFFFFFF
        )
        sketch.update_batch(grams)
        assert sketch.hashvalues.dtype == np.uint32
        assert np.array_equal(ours[i], sketch.hashvalues), f"document {i}"


def test_band_layout_comes_from_datasketchs_optimiser():
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=0.8, num_perm=128, weights=(0.02, 0.98))
    assert optimal_bands(0.8, 128, 0.02, 0.98) == (lsh.b, lsh.r) == (17, 7)
    assert candidate_probability(0.8, 17, 7) == pytest.approx(1 - (1 - 0.8**7) ** 17)


def test_jaccard_and_components():
    sets = [
        np.array([1, 2, 3, 4], np.uint32),
        np.array([2, 3, 4, 5], np.uint32),
        np.array([9], np.uint32),
        np.array([], np.uint32),
    ]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])])
    values = np.concatenate(sets)
    similarity = jaccard(values, offsets, np.array([[0, 1], [0, 2], [1, 1], [2, 3]]))
    assert similarity.tolist() == [3 / 5, 0.0, 1.0, 0.0]
    nodes, labels = components(np.array([[5, 9], [9, 12], [20, 21]]))
    assert nodes.tolist() == [5, 9, 12, 20, 21]
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]


# --------------------------------------------------------------------------------------------
# exact_dedup


def test_exact_dedup_keeps_exactly_one_per_normalised_text(tmp_path):
    texts = base_texts(6, words=30)
    rows = [
        {"id": "a1", "text": texts[0], "score": 0.1},
        {"id": "a2", "text": "  " + texts[0].replace(" ", "   ") + "\n", "score": 0.9},  # spacing only
        {"id": "a3", "text": texts[0].replace("a", "ａ"), "score": 0.5},  # full-width: NFKC folds it
        {"id": "b1", "text": texts[1], "score": 0.2},
        {"id": "b2", "text": texts[1].upper(), "score": 0.3},  # case is kept by default
        {"id": "c1", "text": texts[2], "score": 0.4},
        {"id": "c2", "text": texts[2] + " and longer", "score": 0.4},
    ] + [{"id": f"d{i}", "text": texts[3], "score": float(i)} for i in range(5)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    manifest = curate(
        path, tmp_path / "first", "pipeline=near_dedup", "~stages.minhash_dedup", "input.columns=[score:float64]"
    )
    kept = read_dataset(tmp_path / "first")
    assert sorted(kept.column("id").to_pylist()) == ["a1", "b1", "b2", "c1", "c2", "d0"]
    rejects = read_dataset(tmp_path / "first", "rejects")
    assert dict(zip(rejects.column("id").to_pylist(), rejects.column("exact_cluster").to_pylist())) == {
        "a2": "a1",
        "a3": "a1",
        "d1": "d0",
        "d2": "d0",
        "d3": "d0",
        "d4": "d0",
    }
    assert set(rejects.column("drop_reason").to_pylist()) == {"exact_duplicate"}
    sizes = dict(zip(kept.column("id").to_pylist(), kept.column("exact_cluster_size").to_pylist()))
    assert sizes == {"a1": 3, "b1": 1, "b2": 1, "c1": 1, "c2": 1, "d0": 5}
    details = manifest.stages[0].details
    assert details["duplicates_removed"] == 6 and details["cluster_sizes"] == {"3": 1, "4-7": 1}
    assert manifest.rows_in == manifest.rows + manifest.dropped + manifest.quarantined

    curate(
        path,
        tmp_path / "highest",
        "pipeline=near_dedup",
        "~stages.minhash_dedup",
        "input.columns=[score:float64]",
        "stages.exact_dedup.keep=highest",
        "stages.exact_dedup.priority_column=score",
        "stages.exact_dedup.lowercase=true",
    )
    kept = read_dataset(tmp_path / "highest").column("id").to_pylist()
    assert sorted(kept) == ["a2", "b2", "c1", "c2", "d4"]  # b1/b2 are one text once lowercased

    curate(
        path,
        tmp_path / "longest",
        "pipeline=near_dedup",
        "~stages.minhash_dedup",
        "stages.exact_dedup.keep=longest",
        "stages.exact_dedup.normalize_whitespace=false",
    )
    kept = read_dataset(tmp_path / "longest").column("id").to_pylist()
    assert "a2" in kept and "a1" in kept and "a3" not in kept  # spacing now matters; a1 and a3 tie: first


# --------------------------------------------------------------------------------------------
# minhash_dedup


def planted_corpus(folder: Path, files: int = 4) -> dict[str, list[str]]:
    """Unique documents, plus copies at Jaccard ~0.9 (to be removed) and ~0.5 (to be kept)."""
    rng = random.Random(5)
    texts = base_texts(240, words=150, seed=11)
    vocabulary = sorted({w for t in texts for w in t.split()})
    rows, planted = [], {"near": [], "far": []}
    for i, text in enumerate(texts):
        rows.append({"id": f"doc{i:03d}", "text": text})
        if i % 6 == 0:
            copy = with_jaccard(text, 0.9, rng, vocabulary)
            assert 0.88 <= true_jaccard(text, copy) <= 0.92
            rows.append({"id": f"doc{i:03d}-near", "text": copy})
            planted["near"].append(f"doc{i:03d}-near")
        elif i % 6 == 1:
            copy = with_jaccard(text, 0.5, rng, vocabulary)
            assert 0.45 <= true_jaccard(text, copy) <= 0.55
            rows.append({"id": f"doc{i:03d}-far", "text": copy})
            planted["far"].append(f"doc{i:03d}-far")
    rows.append({"id": "empty-1", "text": "!!! ..."})  # no words: never a near-duplicate
    rows.append({"id": "empty-2", "text": "???"})
    random.Random(3).shuffle(rows)
    per_file = -(-len(rows) // files)
    for f in range(files):
        write_jsonl(folder / f"part{f}.jsonl", rows[f * per_file : (f + 1) * per_file])
    return planted


def test_minhash_removes_planted_near_duplicates_and_leaves_distant_pairs(tmp_path):
    planted = planted_corpus(tmp_path / "in")
    manifest = curate(tmp_path / "in", tmp_path / "out", "pipeline=near_dedup", "executor.task_mb=0.02")
    kept = read_dataset(tmp_path / "out")
    rejects = read_dataset(tmp_path / "out", "rejects")
    removed = dict(zip(rejects.column("id").to_pylist(), rejects.column("dup_cluster").to_pylist()))
    # Each near copy or its original is removed, pointing at the other one (the first seen).
    for copy in planted["near"]:
        original = copy.split("-")[0]
        assert removed.get(copy) == original or removed.get(original) == copy
    ids = set(kept.column("id").to_pylist())
    assert set(planted["far"]) <= ids and {"empty-1", "empty-2"} <= ids
    assert len(removed) == len(planted["near"])
    stage = manifest.stages[1]
    assert stage.dropped == {"near_duplicate": len(planted["near"])}
    details = stage.details
    assert (details["bands"], details["rows"]) == (17, 7) and details["documents_without_words"] == 2
    assert details["cluster_sizes"] == {"2": len(planted["near"])}
    assert details["verified_pairs"] == len(planted["near"]) <= details["candidate_pairs"]
    assert manifest.tasks == 4 and kept.num_rows + len(removed) == manifest.rows_in
    clusters = pa.ipc.open_stream(tmp_path / "out" / "stages" / "minhash_dedup" / "clusters.arrow").read_all()
    similarity = [
        s
        for s, role in zip(clusters.column("similarity").to_pylist(), clusters.column("role").to_pylist())
        if role == "dropped"
    ]
    assert similarity and all(0.85 <= s <= 0.95 for s in similarity)


def test_minhash_without_verification_and_with_char_shingles(tmp_path):
    planted = planted_corpus(tmp_path / "in", files=1)
    # Without verification the band layout alone separates 0.9 from 0.5: a steep S-curve.
    steep = ["stages.minhash_dedup.num_perm=512", "stages.minhash_dedup.bands=32", "stages.minhash_dedup.rows=16"]
    for options in (
        [*steep, "stages.minhash_dedup.verify=false"],
        ["stages.minhash_dedup.shingle_unit=char", "stages.minhash_dedup.ngram=12"],
    ):
        out = tmp_path / options[-1].split(".")[-1].replace("=", "_")
        curate(tmp_path / "in", out, "pipeline=near_dedup", "~stages.exact_dedup", *options)
        removed = set(read_dataset(out, "rejects").column("id").to_pylist())
        found = {c for c in planted["near"] if c in removed or c.split("-")[0] in removed}
        assert found == set(planted["near"])
        assert not {c for c in planted["far"] if c in removed or c.split("-")[0] in removed}


def digests(folder: Path) -> dict[str, list[str]]:
    manifest = Manifest.read(folder)
    return {key: [s.sha256 for s in getattr(manifest, key)] for key in ("shards", "rejects")}


def test_same_shards_twice_and_with_one_or_two_workers(tmp_path):
    planted_corpus(tmp_path / "in")
    options = ("pipeline=near_dedup", "executor.task_mb=0.02", "output.shard_mb=0.05")
    curate(tmp_path / "in", tmp_path / "w1", "executor.workers=1", *options)
    curate(tmp_path / "in", tmp_path / "w1-again", "executor.workers=1", *options)
    curate(tmp_path / "in", tmp_path / "w2", "executor.workers=2", *options)
    assert digests(tmp_path / "w1") == digests(tmp_path / "w1-again") == digests(tmp_path / "w2")
    assert len(digests(tmp_path / "w1")["rejects"]) >= 2
    for name in ("exact_dedup", "minhash_dedup"):
        first = (tmp_path / "w1" / "stages" / name / "clusters.arrow").read_bytes()
        assert first == (tmp_path / "w2" / "stages" / name / "clusters.arrow").read_bytes()


def test_killed_during_the_apply_pass_resumes_to_the_same_shards(tmp_path):
    texts = base_texts(3000, words=40, seed=2)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"d{i}-copy", "text": t + " extra"} for i, t in enumerate(texts[:600])]
    random.Random(1).shuffle(rows)
    for f in range(60):
        write_jsonl(tmp_path / "in" / f"part{f:02d}.jsonl", rows[f * 60 : (f + 1) * 60])
    options = [
        "pipeline=near_dedup",
        "~stages.exact_dedup",
        "executor.task_mb=0.001",
        "executor.workers=1",
        "output.report=false",
    ]
    curate(tmp_path / "in", tmp_path / "whole", *options)

    out = tmp_path / "killed"
    done = kill_after_tasks(tmp_path / "in", out, options, pass_index=1, tasks=3)
    assert 3 <= done < 60
    assert (out / "_work" / "stage-minhash_dedup" / "resolve.json").is_file()

    manifest = curate(tmp_path / "in", out, *options)
    assert digests(out) == digests(tmp_path / "whole")
    assert manifest.stages[0].dropped == {"near_duplicate": 600}
    assert not list(out.rglob("*.tmp"))


def test_bad_options_are_one_line_config_errors():
    schema = KINDS["documents"]
    for options, message in [
        ({"bands": 10}, "bands: set both"),
        ({"bands": 20, "rows": 10}, "exceeds num_perm"),
        ({"keep": "highest"}, "priority_column: required"),
        ({"keep": "best"}, "keep: must be one of"),
        ({"threshold": 1.5}, "threshold: must be in"),
        ({"keep": "highest", "priority_column": "quality"}, "needs column 'quality'"),
    ]:
        stages = {"m": {"_target_": "curate.stages.dedup.MinHashDedup", **options}}
        with pytest.raises(ConfigError, match=message):
            build_pipeline(stages, schema, "documents")


def test_report_shows_duplicate_clusters_escaped(tmp_path):
    text = "<script>alert('x')</script> " + base_texts(1, words=80)[0]
    rows = [
        {"id": "orig", "text": text},
        {"id": "copy", "text": text + " tail"},
        {"id": "other", "text": base_texts(1, words=80, seed=9)[0]},
    ]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    curate(path, tmp_path / "out", "pipeline=near_dedup")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Duplicate clusters" in html
    assert "&lt;script&gt;alert(" in html and "<script>alert(" not in html
    assert "orig" in html and "copy" in html


def test_near_dedup_recipe_composes_with_its_stages():
    cfg = compose(["pipeline=near_dedup", "input.paths=[x]", "output.dir=y"])
    assert list(cfg.stages) == ["exact_dedup", "minhash_dedup"]
    assert cfg.stages.minhash_dedup.threshold == 0.8 and cfg.stages.minhash_dedup.ngram == 5


def test_nothing_to_deduplicate_still_completes(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "tiny"}, {"text": "tiny"}, {"text": None}])
    manifest = curate(path, tmp_path / "out", "pipeline=clean", "+stage@stages.minhash_dedup=minhash_dedup")
    assert manifest.rows == 0 and manifest.quarantined == 1
    assert manifest.stages[-1].details["documents"] == 0
    manifest = curate(path, tmp_path / "unique", "pipeline=near_dedup")
    assert manifest.rows == 1 and manifest.stages[0].dropped == {"exact_duplicate": 1}
    assert manifest.stages[1].details["clusters"] == 0


def test_cluster_columns_can_be_left_out(tmp_path):
    text = base_texts(1, words=50)[0]
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": text}, {"id": "b", "text": text + " more"}])
    manifest = curate(
        path,
        tmp_path / "out",
        "pipeline=near_dedup",
        "stages.exact_dedup.cluster_columns=false",
        "stages.minhash_dedup.cluster_columns=false",
    )
    assert [f["name"] for f in manifest.schema] == ["id", "text", "source", "meta"]
    assert read_dataset(tmp_path / "out").column("id").to_pylist() == ["a"]
    assert read_dataset(tmp_path / "out", "rejects").column("drop_reason").to_pylist() == ["near_duplicate"]
