"""Language ID on real text (the Universal Declaration of Human Rights in several languages)."""

from __future__ import annotations

import zipfile

import pytest

from curate.stages.language import LanguageID
from tests.quality_helpers import batch_of, run

UDHR = {
    "en": "English-Latin1",
    "fr": "French_Francais-Latin1",
    "de": "German_Deutsch-Latin1",
    "es": "Spanish-Latin1",
    "ru": "Russian-UTF8",
}


@pytest.fixture(scope="module")
def udhr(request) -> dict[str, list[str]]:
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "nltk_corpora" / "udhr.zip"
    if not path.is_file():
        pytest.skip("../shared/data/nltk_corpora is not available")
    texts = {}
    with zipfile.ZipFile(path) as archive:
        for lang, name in UDHR.items():
            raw = archive.read(f"udhr/{name}")
            text = raw.decode("utf-8" if name.endswith("UTF8") else "latin-1")
            lines = [line.strip() for line in text.splitlines() if len(line.split()) >= 8]
            texts[lang] = lines
    return texts


@pytest.mark.parametrize("backend", ["cld3", "lingua", "langid"])
def test_identifies_and_keeps_the_languages_asked_for(udhr, backend):
    docs = [" ".join(udhr[lang][5:9]) for lang in UDHR]
    reasons, scores = run(LanguageID(backend=backend, fallback=None), docs)
    assert scores["lang"] == list(UDHR)
    assert all(score > 0.9 for score in scores["lang_score"])
    assert reasons == [None, "lang_other", "lang_other", "lang_other", "lang_other"]
    reasons, _ = run(LanguageID(backend=backend, fallback=None, languages=["fr", "de"]), docs)
    assert reasons == ["lang_other", None, None, "lang_other", "lang_other"]
    reasons, _ = run(LanguageID(backend=backend, fallback=None, languages=[]), docs)  # any language, confidently
    assert reasons == [None] * 5


def test_threshold_boundary(udhr):
    doc = [" ".join(udhr["en"][:1])[:60]]
    _, scores = run(LanguageID(languages=[], threshold=0.0), doc)
    score = scores["lang_score"][0]
    reasons, _ = run(LanguageID(languages=[], threshold=score), doc)
    assert reasons == ["lang_low_score"]  # kept only above the threshold, as datatrove
    assert 0.5 < score <= 1.0
    reasons, _ = run(LanguageID(languages=[], threshold=score - 1e-6), doc)
    assert reasons == [None]


def test_text_without_language(udhr):
    reasons, scores = run(LanguageID(), ["12345 67 !!! ###"])
    assert scores["lang"] == [None] and scores["lang_score"] == [0.0]
    assert reasons == ["lang_low_score"]


def test_fasttext_backend_with_a_model_trained_here(udhr, tmp_path):
    from curate.stages.fasttext_quality import train_fasttext

    train = tmp_path / "lid.txt"
    with open(train, "w", encoding="utf-8") as handle:
        for lang, lines in udhr.items():
            for line in lines[10:]:
                handle.write(f"__label__{lang} {line}\n")
    train_fasttext(
        train, tmp_path / "lid.bin", {"epoch": 50, "lr": 0.1, "bucket": 20_000, "thread": 1, "seed": 1, "verbose": 0}
    )
    stage = LanguageID(backend="fasttext", model_path=str(tmp_path / "lid.bin"), languages=["en", "ru"])
    stage.validate()
    docs = [udhr[lang][2] + "\n" + udhr[lang][3] for lang in UDHR]
    reasons, scores = run(stage, docs)
    assert scores["lang"] == list(UDHR)
    assert reasons == [None, "lang_other", "lang_other", "lang_other", None]


def test_invalid_options():
    with pytest.raises(ValueError, match="backend"):
        LanguageID(backend="cld2").validate()
    with pytest.raises(ValueError, match="fallback"):
        LanguageID(fallback="lingva").validate()
    with pytest.raises(ValueError, match="candidates: only lingua and langid"):
        LanguageID(candidates=["en", "fr"]).validate()
    with pytest.raises(ValueError, match="model_path"):
        LanguageID(backend="fasttext").validate()
    with pytest.raises(ValueError, match="candidates"):
        LanguageID(backend="lingua", candidates=["xx"]).validate()


def test_reads_only_the_first_characters():
    stage = LanguageID(max_chars=30)
    stage.setup()
    english = "This is plainly an English sentence about the weather. "
    german = "Dies ist eindeutig ein deutscher Satz über das Wetter. " * 20
    result = stage.process(batch_of([english + german]))
    assert result.kept.column("lang")[0].as_py() == "en"


def test_default_backend_decides_as_lingua_on_real_pages_and_asks_it_when_unsure(shared_data):
    """CLD3 (the default) keeps and drops exactly the real web pages lingua keeps and drops, and
    hands the texts it is not sure of (short messages) to lingua, counting them."""
    import gzip
    import json

    from curate.stats import StageStats

    with gzip.open(shared_data / "c4_sample/c4_demo.jsonl.gz", "rt") as handle:
        pages = [json.loads(line)["text"] for line in handle]
    default, lingua = LanguageID(), LanguageID(backend="lingua", fallback=None)
    assert default.backend == "cld3" and default.fallback == "lingua"
    reasons, scores = run(default, pages)
    assert reasons == run(lingua, pages)[0]
    assert sum(r is None for r in reasons) > 290 and set(scores["lang"]) >= {"en"}

    short = ["ok", "Bonjour mon ami, hello my friend", "see you later alligator"]
    default.bind_stats(stats := StageStats())
    _, scores = run(default, short)
    assert stats.counters["fallback"] == 2  # CLD3 is unsure of the first two
    assert scores["lang"][2] == "en" and scores["lang"][:2] == run(lingua, short[:2])[1]["lang"]
