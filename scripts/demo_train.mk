# The trainer half of the end-to-end demo, as a make target: `include scripts/demo_train.mk` in
# the Makefile and make `demo` depend on `demo-train` (or call it). Uses the Makefile's VENV,
# SHARED and DEMO_OUT.
.PHONY: demo-train
demo-train: install
	PYTHON=$(abspath $(PY)) SHARED=$(SHARED) OUT=$(DEMO_OUT)/train HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
	  scripts/demo_train.sh
