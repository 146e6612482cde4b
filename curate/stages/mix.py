"""Mixing sources by weight for data-mix ablations (the `mix` recipe)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.arrow_io import read_table
from curate.dedup.text import hash_strings, mix64
from curate.errors import ThresherError
from curate.rank_select import GATHER_ROWS, GATHERED_ROW_BYTES, HISTOGRAM_BYTES, RankSelect, Rows, answer
from curate.stages.base import GlobalContext, GlobalStage, Load, Memory, PartitionContext, RowResult

NOT_SAMPLED = "mix_not_sampled"
UNWEIGHTED = "mix_source_not_weighted"
# Units are summed as integers (1/2^16 of a unit): sums are exact, the same in any order.
UNIT_SCALE = 1 << 16


def parse_pairs(option: str, pairs: list[str]) -> dict[str, float]:
    """["web:0.7", "code:0.3"] → {"web": 0.7, "code": 0.3}; raises ValueError naming the option."""
    parsed = {}
    for pair in pairs:
        name, sep, value = str(pair).rpartition(":")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or not name or number < 0:
            raise ValueError(f"{option}: '{pair}' is not 'source:number' with a number >= 0")
        parsed[name] = number
    return parsed


@dataclass
class Mix(GlobalStage):
    """Sample sources to target weights, repeating a source at most its epoch cap.

    `weights` gives each `source` value its share of the output ("web:0.7", "code:0.3";
    normalised to sum to 1), measured in `unit`: "tokens" (the `count_column` if set, else UTF-8
    bytes of `text` / `bytes_per_token`) or "documents". The output size is `total` units if
    given, else the largest mix that meets the weights without repeating any source more than
    its cap: `max_epochs` (default 1: no repetition), or a per-source cap in `epoch_caps`
    ("papers:4"; Galactica repeated its high-quality scientific sources up to ~4 epochs, and
    Muennighoff et al. 2023 found up to 4 epochs of repetition almost as good as new data).

    Sampling is deterministic (seeded): a source at e epochs keeps every document floor(e) times
    plus a random subset for the fraction: the documents with the smallest sample keys (a hash of
    `seed`, the source and the document's id; ties by position) until their units reach the
    fraction of the source's units (the document that reaches it included). The cut is found
    exactly, in partitions (`curate.rank_select`): no step holds every document's state, and the
    sample is the same whatever the number of workers, partitions or tasks. Each copy is a row with its
    `mix_epoch` (0, 1, ...); copies after the first are counted as `generated` rows (the
    accounting: rows in + generated = rows out + dropped). Documents not sampled are dropped
    ("mix_not_sampled"), as are sources without a weight ("mix_source_not_weighted"). The
    realised mix — units, documents and epochs per source, and the shortfall if `total` asks for
    more than the caps allow — is in the manifest's stage details.
    """

    config_name: ClassVar[str] = "mix"
    requires: ClassVar[tuple[str, ...]] = ("id", "source")
    provides: ClassVar[dict[str, pa.DataType]] = {"mix_epoch": pa.int32()}

    weights: list[str] = field(default_factory=list)
    unit: str = "tokens"
    count_column: Optional[str] = None
    bytes_per_token: float = 4.0
    total: Optional[float] = None
    max_epochs: float = 1.0
    epoch_caps: list[str] = field(default_factory=list)
    seed: int = 0

    def validate(self) -> None:
        if not self.weights:
            raise ValueError("weights: give at least one 'source:weight' (e.g. [web:0.7,code:0.3])")
        if sum(parse_pairs("weights", self.weights).values()) <= 0:
            raise ValueError("weights: at least one weight must be > 0")
        parse_pairs("epoch_caps", self.epoch_caps)
        if self.unit not in ("tokens", "documents"):
            raise ValueError("unit: must be tokens or documents")
        if self.max_epochs <= 0 or self.bytes_per_token <= 0 or (self.total is not None and self.total <= 0):
            raise ValueError("max_epochs: max_epochs, bytes_per_token and total must be > 0")

    def required_columns(self) -> tuple[str, ...]:
        counted = self.count_column or ("text" if self.unit == "tokens" else None)
        return self.requires + ((counted,) if counted else ())

    def units(self, batch: pa.RecordBatch) -> np.ndarray:
        if self.unit == "documents":
            return np.ones(batch.num_rows)
        if self.count_column:
            return batch.column(self.count_column).to_numpy(zero_copy_only=False).astype(np.float64)
        return pc.binary_length(batch.column("text")).to_numpy(zero_copy_only=False) / self.bytes_per_token

    def memory(self, load: Load) -> Memory:
        """As top_fraction's, per weighted source: a partition reads one task's state at a time (key,
        position, units: 24 B a row, and its source), the driver merges a histogram per source."""
        sources = len(self.weights)
        return Memory(
            partition=load.task_documents * 40 + sources * HISTOGRAM_BYTES,
            driver=sources * (HISTOGRAM_BYTES + GATHER_ROWS * GATHERED_ROW_BYTES),
        )

    def sample_keys(self, batch: pa.RecordBatch) -> np.ndarray:
        """Each document's sample key: a hash of the seed, its source and its id."""
        ids = hash_strings(pc.cast(batch.column("id"), pa.string()))
        sources = hash_strings(pc.cast(batch.column("source"), pa.string()))
        return mix64(ids ^ mix64(sources + np.uint64(self.seed % (1 << 64))))

    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        units = np.round(self.units(batch) * UNIT_SCALE).astype(np.int64)
        return pa.record_batch(
            {"pos": positions, "source": batch.column("source"), "units": units, "key": self.sample_keys(batch)}
        )

    def plan(self, available: dict[str, float]) -> dict[str, dict[str, float]]:
        """Epochs per source for the weights, caps and total; with what was asked and realised."""
        weights = parse_pairs("weights", self.weights)
        norm = sum(weights.values())
        weights = {s: w / norm for s, w in weights.items() if w > 0}
        caps = {s: parse_pairs("epoch_caps", self.epoch_caps).get(s, self.max_epochs) for s in weights}
        present = {s: available.get(s, 0.0) for s in weights}
        if self.total is not None:
            total = self.total
        else:  # the largest output where no source exceeds its cap
            total = min((caps[s] * present[s] / w for s, w in weights.items()), default=0.0)
        plan = {}
        for source, weight in weights.items():
            asked = weight * total
            epochs = min(asked / present[source], caps[source]) if present[source] else 0.0
            plan[source] = {"weight": weight, "asked": asked, "available": present[source], "epochs": epochs}
        return plan

    def resolve(self, ctx: GlobalContext) -> None:
        select = RankSelect(ctx.map_partitions)
        totals = select.totals()  # per source: documents and units
        available = {source: units / UNIT_SCALE for source, (_, units) in totals.items()}
        empty = [s for s, w in parse_pairs("weights", self.weights).items() if w > 0 and not available.get(s)]
        if empty:
            raise ThresherError(
                f"stages.{self.name}.weights: source '{empty[0]}' has a weight but no rows in the input "
                f"(sources present: {', '.join(sorted(available)) or 'none'})"
            )
        plan = self.plan(available)
        whole = {source: int(np.floor(part["epochs"] + 1e-12)) for source, part in plan.items()}
        # The sample takes documents while the units before them are below the fraction's units.
        targets = {
            source: math.ceil((part["epochs"] - whole[source]) * totals[source][1] - 1e-9 * UNIT_SCALE)
            for source, part in plan.items()
        }
        sampled = select.select({source: target for source, target in targets.items() if target > 0})
        decisions: dict[str, Any] = {}
        for source, part in plan.items():
            documents, units = totals[source]
            cut = sampled.get(source)
            decisions[source] = {"whole": whole[source], "cut": list(cut.key) if cut else None}
            part.update(
                realised=(whole[source] * units + (cut.weight if cut else 0)) / UNIT_SCALE,
                documents=whole[source] * documents + (cut.rows if cut else 0),
                source_documents=documents,
            )
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / "decisions.json").write_text(json.dumps(decisions))
        realised_total = sum(p.get("realised", 0.0) for p in plan.values())
        self.stat_set(
            unit=self.unit,
            total_asked=self.total,
            total_realised=realised_total,
            sources={
                s: {
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()},
                    "share": round(p.get("realised", 0.0) / realised_total, 4) if realised_total else 0.0,
                    "short_by": round(max(0.0, p["asked"] - p.get("realised", 0.0)), 4),
                }
                for s, p in plan.items()
            },
            unweighted_sources=sorted(set(available) - set(plan)),
        )

    def resolve_partition(self, ctx: PartitionContext) -> dict[str, Any]:
        """A step of the rank selection over this partition's share of the documents, a file at a time:
        per source, keys (sample key, position) weighted by units."""
        files, _ = ctx.scan_share()

        def chunks() -> Iterator[dict[str, Rows]]:
            for path in files:
                table = read_table(path, ["pos", "source", "units", "key"])
                sources = pc.dictionary_encode(table.column("source").combine_chunks())
                codes = sources.indices.to_numpy(zero_copy_only=False)
                columns = [table.column(name).to_numpy() for name in ("key", "pos", "units")]
                keys, positions, units = columns[0], columns[1].astype(np.uint64), columns[2]
                yield {
                    str(name): (keys[codes == code], positions[codes == code], units[codes == code])
                    for code, name in enumerate(sources.dictionary.to_pylist())
                }

        return answer(ctx.request, chunks())

    def load(self, ctx: GlobalContext) -> None:
        self.decisions = json.loads((ctx.work_dir / "decisions.json").read_text())

    def copies(self, batch: pa.RecordBatch, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How many times each row is output, and whether its source has a weight."""
        copies = np.zeros(batch.num_rows, np.int32)
        weighted = np.zeros(batch.num_rows, bool)
        sources = pc.dictionary_encode(pc.cast(batch.column("source"), pa.string()))
        codes = sources.indices.to_numpy(zero_copy_only=False)
        keys = None
        for code, source in enumerate(sources.dictionary.to_pylist()):
            decision = self.decisions.get(source)
            if decision is None:
                continue
            rows = codes == code
            weighted[rows] = True
            copies[rows] = decision["whole"]
            if decision["cut"] is not None:
                keys = self.sample_keys(batch) if keys is None else keys
                hi, lo = (np.uint64(value) for value in decision["cut"])
                position = positions.astype(np.uint64)
                copies[rows & ((keys < hi) | ((keys == hi) & (position <= lo)))] += 1
        return copies, weighted

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        copies, weighted = self.copies(batch, positions)
        # Copies of a document go to different places in the output: epoch 0 rows first, then epoch 1, ...
        takes, epochs = [], []
        for epoch in range(int(copies.max(initial=0))):
            rows = np.nonzero(copies > epoch)[0]
            takes.append(rows)
            epochs.append(np.full(len(rows), epoch, dtype=np.int32))
        take = np.concatenate(takes) if takes else np.array([], dtype=np.int64)
        self.stat_update("generated", int(np.maximum(copies - 1, 0).sum()))  # the repeated epochs
        kept = batch.take(pa.array(take, pa.int64())).append_column(
            "mix_epoch", pa.array(np.concatenate(epochs) if epochs else np.array([], np.int32), pa.int32())
        )
        dropped_rows = np.nonzero(copies == 0)[0]
        if not len(dropped_rows):
            return RowResult(kept=kept)
        reasons = np.where(weighted[dropped_rows], NOT_SAMPLED, UNWEIGHTED)
        dropped = batch.take(pa.array(dropped_rows, pa.int64()))
        dropped = dropped.append_column("mix_epoch", pa.nulls(len(dropped_rows), pa.int32()))
        dropped = dropped.append_column("drop_reason", pa.array(reasons.tolist(), pa.string()))
        return RowResult(kept=kept, dropped=dropped)
