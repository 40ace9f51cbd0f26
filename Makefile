# emoscore: `make demo` installs everything and scores a sample clip; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared/datasets
SAMPLE ?= tests/data/talking-head-a.mp4
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup system demo test test-fast lint bench train train-audio train-visual train-music export clean

setup: system $(VENV)/.installed

# System libraries: fluidsynth for rendering, a full General MIDI soundfont (the bundled small one is the fallback),
# chromium for the review-page test.
system:
	@if ! ldconfig -p | grep -q libfluidsynth; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libfluidsynth3 fluid-soundfont-gm; fi
	@[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || $(SUDO) apt-get install -y -qq fluid-soundfont-gm || true
	@# chromium: the headless browser tests/test_review.py renders the batch review page in (skipped without it)
	@[ -x /usr/bin/chromium ] || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium) || true

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: setup
	mkdir -p out
	$(BIN)/emoscore score $(SAMPLE) -o out/ --overwrite

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check emoscore tests
	$(BIN)/mypy emoscore

bench: setup
	$(BIN)/python -m emoscore.bench

train: train-audio train-visual train-music
	$(MAKE) export

# The light inference files (.tflite, .npz) `score` runs; converts only models retrained since their last export.
export: setup
	$(BIN)/emoscore export

train-audio: setup
	$(BIN)/emoscore train audio --ravdess $(SHARED)/ravdess-speech-16k

train-visual: setup
	$(BIN)/emoscore train visual --landmarks $(SHARED)/ravdess-landmarks --compare-features \
	  --gap-video tests/data/talking-head-a.mp4 --gap-video tests/data/talking-head-b.mp4

train-music: setup
	$(BIN)/emoscore train music --data $(SHARED)/emopia/midis --vgmidi $(SHARED)/vgmidi

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
