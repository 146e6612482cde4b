"""Language identification with models that ship inside their packages (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.base import FilterStage

BACKENDS = ("lingua", "langid", "fasttext")


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

    def predict(self, texts: list[str]) -> list[tuple[str | None, float]]:
        results: list[tuple[str | None, float]] = []
        for values in self.detector.compute_language_confidence_values_in_parallel(texts):
            best = values[0] if values else None
            if best is None or best.value <= 0:
                results.append((None, 0.0))
            else:
                # lingua sums in hash-map order, so the last digits vary from run to run: round
                # them off to keep the stage deterministic
                results.append((best.language.iso_code_639_1.name.lower(), round(float(best.value), 6)))
        return results


class LangidBackend:
    """langid.py (97 languages, a small naive Bayes model), with normalised probabilities."""

    def __init__(self, candidates: list[str]):
        from langid.langid import LanguageIdentifier, model

        self.identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        if candidates:
            self.identifier.set_languages(candidates)

    def predict(self, texts: list[str]) -> list[tuple[str | None, float]]:
        results: list[tuple[str | None, float]] = []
        for text in texts:
            lang, prob = self.identifier.classify(text)
            results.append((lang, float(prob)) if text.strip() else (None, 0.0))
        return results


class FastTextBackend:
    """Any fastText language-ID model file (lid.176.bin / .ftz as used by FineWeb, GlotLID, or your own)."""

    def __init__(self, model_path: str):
        import fasttext

        self.model = fasttext.load_model(model_path)

    def predict(self, texts: list[str]) -> list[tuple[str | None, float]]:
        # fastText reads one line: newlines become spaces, as datatrove does
        labels, probs = self.model.predict([t.replace("\n", " ") for t in texts], k=1)
        results: list[tuple[str | None, float]] = []
        for label, prob in zip(labels, probs):
            if not len(label):
                results.append((None, 0.0))
            else:
                results.append((label[0].removeprefix("__label__"), float(min(prob[0], 1.0))))
        return results


@dataclass
class LanguageID(FilterStage):
    """Identify each document's language (`lang`, `lang_score`) and keep the languages asked for.

    `lang` is the most likely language (ISO 639-1 code for lingua and langid, the model's labels
    for fastText) and `lang_score` its probability. A document is dropped if `lang_score` is at
    most `threshold` (`lang_low_score`) or, when `languages` is not empty, if `lang` is not one
    of them (`lang_other`). Only the first `max_chars` characters are read (language is clear
    well before that; long documents would cost time for nothing).

    Backends, all offline: `lingua` (default; lingua-language-detector, 75 languages, low-accuracy
    mode unless `low_accuracy=false`, which costs ~1.1 GB of memory), `langid` (langid.py, 97
    languages), `fasttext` (any fastText LID model at `model_path`: FineWeb's lid.176, GlotLID).
    `candidates` restricts the languages the model considers (faster, but a document in another
    language is then assigned to the closest candidate: prefer `languages` for filtering).

    Defaults: keep English at score > 0.65, datatrove's LanguageFilter threshold (FineWeb).
    Score columns: lang, lang_score.
    """

    config_name: ClassVar[str] = "language"
    provides: ClassVar[dict[str, pa.DataType]] = {"lang": pa.string(), "lang_score": pa.float64()}

    languages: list[str] = field(default_factory=lambda: ["en"])
    threshold: float = 0.65
    backend: str = "lingua"
    low_accuracy: bool = True
    candidates: list[str] = field(default_factory=list)
    model_path: Optional[str] = None
    max_chars: int = 2000

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: '{self.backend}' is not one of: {', '.join(BACKENDS)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold: must be within [0, 1]")
        if self.max_chars <= 0:
            raise ValueError("max_chars: must be > 0")
        if self.backend == "fasttext":
            if not self.model_path:
                raise ValueError("model_path: required with backend=fasttext (a fastText language-ID model file)")
            from curate.stages.fasttext_quality import check_fasttext_file

            check_fasttext_file(self.model_path)
        if self.backend == "lingua" and self.candidates:
            from lingua import IsoCode639_1

            unknown = [c for c in self.candidates if not hasattr(IsoCode639_1, c.upper())]
            if unknown:
                raise ValueError(f"candidates: lingua does not know {', '.join(unknown)} (ISO 639-1 codes)")

    def __post_init__(self) -> None:
        self._model: LinguaBackend | LangidBackend | FastTextBackend | None = None

    def setup(self) -> None:
        if self.backend == "lingua":
            self._model = LinguaBackend(self.candidates, self.low_accuracy)
        elif self.backend == "langid":
            self._model = LangidBackend(self.candidates)
        else:
            assert self.model_path is not None  # validate: backend=fasttext requires model_path
            self._model = FastTextBackend(self.model_path)

    def teardown(self) -> None:
        self._model = None

    def score(self, batch: pa.RecordBatch) -> dict:
        assert self._model is not None, "setup() loads the model"
        texts = [t[: self.max_chars] for t in batch.column("text").to_pylist()]
        predictions = self._model.predict(texts)
        return {"lang": [p[0] for p in predictions], "lang_score": [p[1] for p in predictions]}

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        score = batch.column("lang_score").to_numpy(zero_copy_only=False)
        reasons = np.full(batch.num_rows, None, dtype=object)
        if self.languages:
            allowed = pc.fill_null(pc.is_in(batch.column("lang"), value_set=pa.array(self.languages)), False)
            reasons[~allowed.to_numpy(zero_copy_only=False)] = "lang_other"
        reasons[score <= self.threshold] = "lang_low_score"
        return pa.array(reasons, type=pa.string())
