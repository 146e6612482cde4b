"""Language identification with models that ship inside their packages (nothing is downloaded).

Each backend's `predict` gives, per text, (language, probability, reliable): `reliable` is the
model's own verdict that its answer can be trusted (CLD3's `is_reliable`; the other backends
always trust an answer they give), which decides whether the `fallback` backend is asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.base import FilterStage, Resources
from curate.stages.rules import Rule

BACKENDS = ("cld3", "lingua", "langid", "fasttext")
Prediction = tuple[Optional[str], float, bool]
LETTER = re.compile(r"[^\W\d_]")  # a letter of any script
# CLD3's codes that are not the ISO 639-1 codes the other backends give (Hebrew, Javanese, Filipino).
CLD3_CODES = {"iw": "he", "jw": "jv", "fil": "tl"}


class CLD3Backend:
    """Google's CLD3 (a small neural network over character n-grams, 107 languages; its model is
    compiled into the `cld3-py` wheel). About 15x faster than lingua's low-accuracy mode on web
    pages, as accurate on the UDHR (docs/benchmarks/language.md). Romanised languages keep their
    suffix (`zh-Latn`)."""

    def __init__(self, max_chars: int):
        import gcld3

        # CLD3 counts bytes: room for the whole prefix in any script (up to 4 bytes a character)
        self.identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=4 * max_chars)

    def predict(self, texts: list[str]) -> list[Prediction]:
        results: list[Prediction] = []
        for text in texts:
            if not LETTER.search(text):  # CLD3 names a language even for digits and symbols
                results.append((None, 0.0, True))
                continue
            found = self.identifier.FindLanguage(text=text)
            code = CLD3_CODES.get(found.language, found.language)
            results.append((code, float(found.probability), bool(found.is_reliable)))
        return results


class LinguaBackend:
    """lingua-language-detector (75 languages; low-accuracy mode: ~80 MB, vs 1.1 GB in full mode)."""

    def __init__(self, candidates: list[str], low_accuracy: bool):
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        if candidates:
            codes = [getattr(IsoCode639_1, code.upper()) for code in candidates]
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        self.detector = builder.build()

    def predict(self, texts: list[str]) -> list[Prediction]:
        results: list[Prediction] = []
        for values in self.detector.compute_language_confidence_values_in_parallel(texts):
            best = values[0] if values else None
            if best is None or best.value <= 0:
                results.append((None, 0.0, True))
            else:
                # lingua sums in hash-map order, so the last digits vary from run to run: round
                # them off to keep the stage deterministic
                results.append((best.language.iso_code_639_1.name.lower(), round(float(best.value), 6), True))
        return results


class LangidBackend:
    """langid.py (97 languages, a small naive Bayes model), with normalised probabilities."""

    def __init__(self, candidates: list[str]):
        from langid.langid import LanguageIdentifier, model

        self.identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        if candidates:
            self.identifier.set_languages(candidates)

    def predict(self, texts: list[str]) -> list[Prediction]:
        results: list[Prediction] = []
        for text in texts:
            lang, prob = self.identifier.classify(text)
            results.append((lang, float(prob), True) if text.strip() else (None, 0.0, True))
        return results


class FastTextBackend:
    """Any fastText language-ID model file (lid.176.bin / .ftz as used by FineWeb, GlotLID, or your own)."""

    def __init__(self, model_path: str):
        import fasttext

        self.model = fasttext.load_model(model_path)

    def predict(self, texts: list[str]) -> list[Prediction]:
        # fastText reads one line: newlines become spaces, as datatrove does
        labels, probs = self.model.predict([t.replace("\n", " ") for t in texts], k=1)
        results: list[Prediction] = []
        for label, prob in zip(labels, probs):
            if not len(label):
                results.append((None, 0.0, True))
            else:
                results.append((label[0].removeprefix("__label__"), float(min(prob[0], 1.0)), True))
        return results


Backend = CLD3Backend | LinguaBackend | LangidBackend | FastTextBackend


@dataclass
class LanguageID(FilterStage):
    """Identify each document's language (`lang`, `lang_score`) and keep the languages asked for.

    `lang` is the most likely language (ISO 639-1 code for cld3, lingua and langid, the model's
    labels for fastText) and `lang_score` its probability. A document is dropped if `lang_score`
    is at most `threshold` (`lang_low_score`) or, when `languages` is not empty, if `lang` is not
    one of them (`lang_other`). Only the first `max_chars` characters are read (language is clear
    well before that; long documents would cost time for nothing).

    Backends, all offline: `cld3` (default; Google's CLD3 from the cld3-py wheel, 107 languages,
    ~3,000 web pages/s per core), `lingua` (lingua-language-detector, 75 languages, low-accuracy
    mode unless `low_accuracy=false`, which costs ~1.1 GB of memory; ~200 pages/s), `langid`
    (langid.py, 97 languages), `fasttext` (any fastText LID model at `model_path`: FineWeb's
    lid.176, GlotLID). Documents the backend is not sure of (CLD3's own `is_reliable`: short,
    mixed or rare-language text) are identified again by `fallback` (default `lingua`; null: keep
    the backend's answer); the manifest counts them (`fallback`). On the web and UDHR samples
    this keeps every keep/drop decision of lingua alone and identifies the UDHR more accurately
    (docs/benchmarks/language.md). `candidates` restricts the languages lingua or langid consider
    (faster, but a document in another language is then assigned to the closest candidate:
    prefer `languages` for filtering).

    Defaults: keep English at score > 0.65, datatrove's LanguageFilter threshold (FineWeb).
    Score columns: lang, lang_score.
    """

    config_name: ClassVar[str] = "language"
    resources: ClassVar[Resources] = Resources(
        memory_gb=0.2
    )  # measured: benchmarks/results/stage_memory.json (CLD3, lingua: 118 MB)
    provides: ClassVar[dict[str, pa.DataType]] = {"lang": pa.string(), "lang_score": pa.float64()}

    languages: list[str] = field(default_factory=lambda: ["en"])
    threshold: float = 0.65
    backend: str = "cld3"
    fallback: Optional[str] = "lingua"
    low_accuracy: bool = True
    candidates: list[str] = field(default_factory=list)
    model_path: Optional[str] = None
    max_chars: int = 2000

    def validate(self) -> None:
        for key, name in (("backend", self.backend), ("fallback", self.fallback)):
            if name is not None and name not in BACKENDS:
                raise ValueError(f"{key}: '{name}' is not one of: {', '.join(BACKENDS)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold: must be within [0, 1]")
        if self.max_chars <= 0:
            raise ValueError("max_chars: must be > 0")
        if "fasttext" in (self.backend, self.fallback):
            if not self.model_path:
                raise ValueError("model_path: required with fasttext (a fastText language-ID model file)")
            from curate.stages.fasttext_quality import check_fasttext_file

            check_fasttext_file(self.model_path)
        if self.candidates and self.backend not in ("lingua", "langid"):
            raise ValueError(f"candidates: only lingua and langid take candidates; backend={self.backend} does not")
        if "lingua" in (self.backend, self.fallback) and self.candidates:
            from lingua import IsoCode639_1

            unknown = [c for c in self.candidates if not hasattr(IsoCode639_1, c.upper())]
            if unknown:
                raise ValueError(f"candidates: lingua does not know {', '.join(unknown)} (ISO 639-1 codes)")

    def __post_init__(self) -> None:
        self._model: Backend | None = None
        self._fallback: Backend | None = None

    def load(self, name: str) -> Backend:
        if name == "cld3":
            return CLD3Backend(self.max_chars)
        if name == "lingua":
            return LinguaBackend(self.candidates, self.low_accuracy)
        if name == "langid":
            return LangidBackend(self.candidates)
        assert self.model_path is not None  # validate: fasttext requires model_path
        return FastTextBackend(self.model_path)

    def setup(self) -> None:
        self._model = self.load(self.backend)  # the fallback is loaded when first needed

    def teardown(self) -> None:
        self._model = self._fallback = None

    def score(self, batch: pa.RecordBatch) -> dict:
        assert self._model is not None, "setup() loads the model"
        texts = [t[: self.max_chars] for t in batch.column("text").to_pylist()]
        predictions = self._model.predict(texts)
        unsure = [i for i, p in enumerate(predictions) if not p[2]]
        if unsure and self.fallback and self.fallback != self.backend:
            self._fallback = self._fallback or self.load(self.fallback)
            for i, second in zip(unsure, self._fallback.predict([texts[i] for i in unsure])):
                predictions[i] = second
            self.stat_update("fallback", len(unsure))
        return {"lang": [p[0] for p in predictions], "lang_score": [p[1] for p in predictions]}

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        score = batch.column("lang_score").to_numpy(zero_copy_only=False)
        reasons = np.full(batch.num_rows, None, dtype=object)
        if self.languages:
            allowed = pc.fill_null(pc.is_in(batch.column("lang"), value_set=pa.array(self.languages)), False)
            reasons[~allowed.to_numpy(zero_copy_only=False)] = "lang_other"
        reasons[score <= self.threshold] = "lang_low_score"
        return pa.array(reasons, type=pa.string())

    def rules(self) -> list[Rule]:
        """The score threshold, as a rule (what reports draw; `lang_other` is not a threshold)."""
        return [Rule("lang_low_score", "lang_score", "<=", self.threshold)]
