"""Galactica-style markup: `science_markup` (structured records and free-text detection) and
`code_markup` (source files with their path), both before tokenization."""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import orjson
import pyarrow as pa

from curate.markup.citations import parse_bibtex
from curate.markup.detect import DETECTORS, detect
from curate.markup.templates import TEMPLATES, detect_template
from curate.stages.base import MapStage


@dataclass
class ScienceMarkup(MapStage):
    """Render scientific records into Galactica-style marked-up text, and mark up free text.

    Templates (`templates: true`), chosen per row from its fields: sequences from the FASTA,
    GenBank and SwissProt readers -> annotations + `[START_AMINO]`/`[START_DNA]` spans;
    molecules from SMILES tables -> `[START_SMILES]` (or `[START_I_SMILES]` when isomeric) +
    properties; arXiv metadata -> title, authors, abstract; unarXive papers -> sections with
    `{{cite:..}}` as `[START_REF] title, first author[END_REF]` (Galactica, Taylor et al. 2022),
    formulas as `$latex$`, figures as `[IMAGE]` + caption. Rows no template fits keep their text.
    Unparsable references: kept as their raw text inside the markers (`unparsed_refs: raw`) or
    removed (`drop`).

    Defaults: templates on, no free-text detection (the `science` recipe turns on `citations`).
    Free-text detection (`detect`) on rows of `detect_sources` (empty: every
    source; add the stage twice for different detectors per source): `citations` (LaTeX
    `\\cite{..}` resolved through the `bibliography` .bib files), `smiles` and `sequences`
    (conservative patterns; precision measured in benchmarks/markup_precision.py).
    Counts of spans, citations and papers go to the manifest.
    """

    config_name: ClassVar[str] = "science_markup"
    requires: ClassVar[tuple[str, ...]] = ("text", "source", "meta")

    templates: bool = True
    detect: list[str] = field(default_factory=list)
    detect_sources: list[str] = field(default_factory=list)
    bibliography: list[str] = field(default_factory=list)
    unparsed_refs: str = "raw"

    def validate(self) -> None:
        unknown = [d for d in self.detect if d not in DETECTORS]
        if unknown:
            raise ValueError(f"detect: unknown detector '{unknown[0]}'; valid: {', '.join(DETECTORS)}")
        if self.unparsed_refs not in ("raw", "drop"):
            raise ValueError("unparsed_refs: must be raw or drop")
        for path in self.bibliography:
            if not Path(path).is_file():
                raise ValueError(f"bibliography: '{path}' does not exist")

    def setup(self) -> None:
        self.references: dict[str, tuple[str, str]] = {}
        for path in self.bibliography:
            data = Path(path).read_bytes()
            text = (gzip.decompress(data) if path.endswith(".gz") else data).decode("utf-8", errors="replace")
            self.references.update(parse_bibtex(text))

    def mark_up(self, text: str, source: str, meta_json: str | None, counts: Counter) -> str:
        """The marked-up text; what was found is counted in `counts`."""
        if self.templates and meta_json and meta_json.startswith("{"):
            meta = orjson.loads(meta_json)
            template = detect_template(meta)
            if template == "unarxive":
                text = TEMPLATES[template](text, meta, counts, self.unparsed_refs)
            elif template is not None:
                text = TEMPLATES[template](text, meta, counts)
            counts[f"template_{template or 'none'}"] += 1
        if self.detect and (not self.detect_sources or source in self.detect_sources):
            text = detect(text, list(self.detect), self.references, counts)
        return text

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        index = batch.schema.get_field_index("text")
        counts: Counter = Counter()
        texts = [
            self.mark_up(t, s, m, counts)
            for t, s, m in zip(
                batch.column("text").to_pylist(), batch.column("source").to_pylist(), batch.column("meta").to_pylist()
            )
        ]
        for name, count in sorted(counts.items()):
            self.stat_update(name, count)
        return batch.set_column(index, batch.schema.field(index), pa.array(texts, pa.string()))


@dataclass
class CodeMarkup(MapStage):
    """Prefix each source file with its path: `<filename>path/to/file.py` and a newline, then
    the code unchanged (StarCoder's metadata convention, Li et al. 2023), so a model sees which
    file and language it is writing. Default `token`: `<filename>`, StarCoder's name, an atomic
    token of the `thresher` tokenizer spec. Whitespace is never touched (Codex: it is the hard part of code). Needs the `path`
    column the code and tar readers add; rows without a path are left as they are.
    """

    config_name: ClassVar[str] = "code_markup"
    requires: ClassVar[tuple[str, ...]] = ("text", "path")

    token: str = "<filename>"

    def validate(self) -> None:
        if not self.token or any(c.isspace() for c in self.token):
            raise ValueError("token: must be non-empty without whitespace")

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        index = batch.schema.get_field_index("text")
        texts = [
            f"{self.token}{path}\n{text}" if path else text
            for text, path in zip(batch.column("text").to_pylist(), batch.column("path").to_pylist())
        ]
        return batch.set_column(index, batch.schema.field(index), pa.array(texts, pa.string()))
