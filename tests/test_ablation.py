"""A data-mix ablation end to end, through the command line: two mixes swept with --multirun,
a tiny model trained on each with --multirun, and a comparison report with their held-out loss."""

from __future__ import annotations

import json

from conftest import curate, thresher

from curate.manifest import Manifest


def test_two_mixes_two_models_one_comparison(tmp_path, shared_data):
    curate(shared_data / "c4_sample", tmp_path / "web", "input.source=web")
    curate(shared_data / "stackexchange_beer", tmp_path / "qa", "input.source=qa", "input.text_field=Body")
    curate(
        [tmp_path / "web", tmp_path / "qa"],
        tmp_path / "tok",
        "pipeline=train_tokenizer",
        "stages.train_tokenizer.vocab_size=600",
        "stages.train_tokenizer.sample_rate=0.3",
    )
    tokenizer = tmp_path / "tok" / "tokenizer"
    curate(shared_data / "wikipedia_sample", tmp_path / "held_docs", "input.text_unit=line")
    curate(
        tmp_path / "held_docs",
        tmp_path / "held",
        "pipeline=tokenize",
        f"stages.tokenize_pack.tokenizer={tokenizer}",
        "stages.tokenize_pack.seq_len=64",
    )

    thresher(
        "curate",
        "--multirun",
        "pipeline=mix_tokens",
        f"input.paths=[{tmp_path / 'web'},{tmp_path / 'qa'}]",
        f"output.dir={tmp_path / 'mixes'}",
        f"stages.tokenize_pack.tokenizer={tokenizer}",
        "stages.tokenize_pack.seq_len=64",
        "executor.workers=1",
        "stages.mix.weights=[web:0.8,qa:0.2],[web:0.2,qa:0.8]",
    )
    mixes = sorted(p for p in (tmp_path / "mixes").iterdir() if (p / "manifest.json").is_file())
    assert len(mixes) == 2
    shares = [Manifest.read(m).stages[0].details["sources"]["web"]["share"] for m in mixes]
    assert abs(shares[0] - 0.8) < 0.02 and abs(shares[1] - 0.2) < 0.02

    thresher(
        "train",
        "--multirun",
        "task=pretrain",
        f"data={mixes[0]},{mixes[1]}",
        f"task.eval_data={tmp_path / 'held'}",
        "model=tiny",
        f"output.dir={tmp_path / 'runs'}",
        "trainer.max_steps=6",
        "trainer.micro_batch_size=4",
        "trainer.cpu_threads=1",
        "log.every=2",
        "checkpoint.every=6",
    )
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file())
    assert len(runs) == 2 and all((r / "model" / "config.json").is_file() for r in runs)
    records = [json.loads((r / "run.json").read_text()) for r in runs]
    assert {r["data"]["path"] for r in records} == {str(m.resolve()) for m in mixes}
    assert all(
        r["summary"]["eval_loss"] > 0 and r["eval_data"]["path"] == str((tmp_path / "held").resolve()) for r in records
    )

    page = tmp_path / "ablation.html"
    thresher("report", str(runs[0]), "--compare", str(runs[1]), "--out", str(page))
    html = page.read_text()
    assert "held-out loss" in html and "data.stages.mix.weights" in html
    for record, mix in zip(records, mixes):
        assert f"{record['summary']['eval_loss']:,.3f}" in html
        counted = next(s.stats["tokens"] for s in Manifest.read(mix).stages if s.name == "tokenize_pack")
        assert f"{counted:,}" in html  # token counts side by side
    assert html.count("data:image/png;base64,") == 2  # composition and loss curves
