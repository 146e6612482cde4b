"""LIMA-style selection: quality and diversity, quotas, and the comparison with random and longest."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import curate, read_dataset, write_jsonl

from curate.sft.quality import format_score, length_score
from curate.sft.select import choose, redundant_rows
from curate.stages.lima import neutral_votes, weighted_quality

KEEP = ("pipeline=clean", "~stages.normalize", "~stages.length_filter")


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    root = tmp_path_factory.mktemp("pools")
    curate(
        str(SHARED_DATA / "stackexchange_*/Posts.xml.gz"),
        root / "se",
        "pipeline=stackexchange_qa",
        "input.records=stackexchange_posts",
        "input.source=stackexchange",
    )
    curate(SHARED_DATA / "alpaca_en_demo/alpaca_en_demo.json.gz", root / "alpaca", *KEEP, "input.records=alpaca")
    return root


def test_sft_lima_beats_random_and_longest(pools, tmp_path):
    manifest = curate(
        [pools / "se", pools / "alpaca"],
        tmp_path / "out",
        "pipeline=sft_lima",
        "stages.lima_select.embedder=tfidf",
        "output.keep_work=false",
    )
    stage = manifest.stages[0]
    details = stage.details
    assert manifest.rows == 1000 and details["pool"] == manifest.rows_in > 2000
    assert stage.rows_in == stage.rows_out + sum(stage.dropped.values())
    assert set(stage.dropped) <= {"not_selected", "redundant"}
    assert details["quotas"]["*stackexchange*"]["selected"] == 750 and details["quotas"]["*"]["selected"] == 250
    sets = details["sets"]
    for baseline in ("random", "longest"):
        assert sets["selected"]["quality"]["mean"] > sets[baseline]["quality"]["mean"]
        assert sets["selected"]["nn_similarity"]["mean"] < sets[baseline]["nn_similarity"]["mean"]
    assert sets["selected"]["share_nn_above_threshold"] == 0.0  # Deita's rejection holds inside the set
    assert sum(sets["selected"]["quality_histogram"]) == 1000

    rows = read_dataset(tmp_path / "out")
    assert rows.schema.names == ["id", "messages", "source", "meta", "quality_score"]
    assert sorted(rows.column("source").to_pylist()).count("stackexchange") == 750
    scores = np.array(rows.column("quality_score").to_pylist())
    assert np.isclose(scores.mean(), sets["selected"]["quality"]["mean"], atol=1e-4)
    kept = pa.ipc.open_stream(tmp_path / "out" / "stages" / "lima_select" / "scores.arrow").read_all()
    assert kept.num_rows == details["pool"] and sum(kept.column("selected").to_pylist()) == 1000
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Selection — lima_select" in html and "nearest-neighbour similarity" in html


@pytest.mark.parametrize("method", ["random", "longest"])
def test_baseline_methods_choose_the_reports_baseline_sets(pools, tmp_path, method):
    """method=random / longest (the arms an ablation compares LIMA selection with) keep exactly the
    set the report describes as that baseline: no quotas, no similarity rejection."""
    manifest = curate(
        [pools / "se", pools / "alpaca"],
        tmp_path / "out",
        "pipeline=sft_lima",
        f"stages.lima_select.method={method}",
        "stages.lima_select.embedder=tfidf",
    )
    details = manifest.stages[0].details
    assert manifest.rows == 1000 and set(manifest.stages[0].dropped) == {"not_selected"}
    assert details["sets"]["selected"] == details["sets"][method]
    kept = pa.ipc.open_stream(tmp_path / "out" / "stages" / "lima_select" / "scores.arrow").read_all()
    chars = np.array(kept.column("response_chars").to_pylist())
    chosen = np.array(kept.column("selected").to_pylist())
    if method == "longest":
        assert chars[chosen].min() >= chars[~chosen].max()
    else:
        assert chars[chosen].min() < chars[~chosen].max()  # a random set is not the longest


@pytest.mark.parametrize("embedder", ["minilm", "model2vec"])
def test_embedders_reject_near_duplicates(tmp_path, shared_data, embedder):
    records = json.loads(gzip.open(shared_data / "alpaca_en_demo/alpaca_en_demo.json.gz").read())[:60]
    copies = [dict(r, instruction=r["instruction"] + " ", output=r["output"] + " ") for r in records[:15]]
    write_jsonl(tmp_path / "pool.jsonl", records + copies)
    options = []  # minilm: the default
    if embedder == "model2vec":
        model = tiny_model2vec(tmp_path / "m2v", [r["instruction"] + " " + r["output"] for r in records])
        options = ["stages.lima_select.embedder=model2vec", f"stages.lima_select.model2vec_path={model}"]
    manifest = curate(
        tmp_path / "pool.jsonl",
        tmp_path / "out",
        "pipeline=sft_lima",
        "input.records=alpaca",
        "stages.lima_select.n=50",
        "stages.lima_select.method=deita",
        "~stages.lima_select.quotas",
        *options,
    )
    stage = manifest.stages[0]
    assert manifest.rows == 50 and stage.dropped.get("redundant", 0) >= 1
    assert stage.details["embedder"] == embedder
    kept = read_dataset(tmp_path / "out").to_pylist()
    prompts = [r["messages"][0]["content"].strip() for r in kept]
    assert len(set(prompts)) == len(prompts)  # never an example and its copy


def test_choose_respects_quotas_threshold_and_fill():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1] = vectors[0]  # an exact duplicate of the best row
    quality = np.linspace(1.0, 0.0, 40)
    groups = np.array([0] * 10 + [1] * 30)
    for method in ("deita", "clusters", "mmr"):
        clusters = np.arange(40) % 4
        picked = choose(quality, vectors, groups, [3, 5], 8, 0.9, method, clusters, fill=False)
        assert len(picked) == 8 and 1 not in picked and 0 in picked
        assert sum(groups[picked] == 0) == 3 and sum(groups[picked] == 1) == 5
        sims = vectors[picked] @ vectors[picked].T
        assert (sims[np.triu_indices(8, 1)] <= 0.9).all()
        filled = choose(quality, vectors, groups, [3, 5], 12, 0.9, method, clusters, fill=True)
        assert len(filled) == 12 and sum(groups[filled] == 0) > 3  # unused places went to the best rows left
    assert redundant_rows(vectors, [0], 0.9).tolist() == [i == 1 for i in range(40)]


def test_quality_signals():
    assert length_score(1500) == 1.0 and length_score(10) == 0.0 and 0 < length_score(300) < 1
    assert length_score(4 * 4096) == 0.0 and 0 < length_score(6000) < 1
    good = "Hops add bitterness.\n\n- Citra: tropical fruit.\n- Saaz: spicy.\n\nUse them late in the boil."
    assert format_score(good) == 1.0
    assert format_score("As mentioned above, I think my answer is right http://x.y") < 0.3
    votes = np.array([np.nan, 1.0, 0.0])
    quality = weighted_quality(
        neutral_votes({"votes": votes, "length": np.array([1.0, 1.0, 1.0])}), {"votes": 2.0, "length": 1.0}
    )
    assert np.allclose(quality, [(2 * 0.5 + 1) / 3, 1.0, 1 / 3])
    unvoted = {"votes": np.full(2, np.nan), "length": np.array([0.2, 0.4])}
    assert np.allclose(weighted_quality(neutral_votes(unvoted), {"votes": 2.0, "length": 1.0}), [0.2, 0.4])


def test_reward_model_and_lm_scores_enter_quality(tmp_path, shared_data):
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from curate.llm.models import model_path
    from tests.train_fixtures import tiny_llama_config

    tokenizer = AutoTokenizer.from_pretrained(model_path("smollm2-135m-instruct"))
    torch.manual_seed(0)
    reward = LlamaForSequenceClassification(
        tiny_llama_config(
            tokenizer.vocab_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    reward.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    records = json.loads(gzip.open(shared_data / "alpaca_en_demo/alpaca_en_demo.json.gz").read())[:12]
    write_jsonl(tmp_path / "pool.jsonl", records)
    manifest = curate(
        tmp_path / "pool.jsonl",
        tmp_path / "out",
        "pipeline=sft_lima",
        "input.records=alpaca",
        "stages.lima_select.n=5",
        "~stages.lima_select.quotas",
        "stages.lima_select.embedder=tfidf",
        f"stages.lima_select.reward_model={tmp_path / 'rm'}",
        "stages.lima_select.lm_model=smollm2-135m-instruct",
    )
    pool = manifest.stages[0].details["pool_quality"]
    assert pool["reward"]["p10"] < 0.2 and pool["reward"]["p90"] > 0.8  # percentile ranks of the model scores
    assert abs(pool["reward"]["mean"] - 0.5) < 1e-3
    assert pool["lm"] is not None and manifest.rows == 5


def tiny_model2vec(folder, texts: list[str]):
    """A model2vec folder distilled (by model2vec itself) from a tiny BERT built from a config, with a
    WordPiece tokenizer trained here on `texts`: the model2vec path without MiniLM's distillation."""
    import torch
    from model2vec.distill import distill_from_model
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    distill_from_model(model=BertModel(config), tokenizer=fast, pca_dims=16).save_pretrained(str(folder))
    return folder


def test_minilm_in_bfloat16_gives_float32s_vectors(shared_data):
    from curate.sft.embed import MiniLM

    records = json.loads(gzip.open(shared_data / "lima/lima.json.gz").read())[:8]
    texts = [r["instruction"] + "\n\n" + r["output"] for r in records]
    exact = MiniLM(128, precision="float32").encode(texts)
    fast = MiniLM(128, precision="bfloat16").encode(texts)
    assert (exact * fast).sum(axis=1).min() > 0.99  # cosine similarity of unit vectors


@pytest.mark.slow
def test_model2vec_is_distilled_from_the_bundled_minilm_once(tmp_path, monkeypatch):
    """No model2vec model ships in a package: the default distils one from the bundled MiniLM
    (minutes, once), then loads it from the cache."""
    from curate.sft.embed import Model2Vec, model2vec_cache

    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path / "cache"))
    first = Model2Vec()
    assert (model2vec_cache() / "config.json").is_file() and first.dim == 256
    vectors = Model2Vec().encode(["How do hops change a beer's taste?", "What gives beer its bitterness?", "Stake ADA"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the two beer questions are closer
