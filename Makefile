# emoscore: `make demo` installs everything and scores a sample clip; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared/datasets
SAMPLE ?= tests/data/talking-head-a.mp4
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup system demo test test-fast lint bench train train-audio train-visual train-music train-music-judge eval-music eval-fusion export clean

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

# The audio judge comes after the LSTMs: it also judges the pieces they compose.
train: train-audio train-visual train-music train-music-judge
	$(MAKE) export

# The light inference files (.tflite, .npz) `score` runs; converts only models retrained since their last export.
export: setup
	$(BIN)/emoscore export

# Cross-validation (5 actor folds) and the recipe comparison are cached under $TMPDIR/emoscore-cache/voice.
train-audio: setup
	$(BIN)/emoscore train audio --ravdess $(SHARED)/ravdess-speech-16k --cv-folds 5 --compare-recipes

# Clip-level face + voice fusion on RAVDESS actors 1-20 from both models' out-of-fold predictions.
eval-fusion: setup
	$(BIN)/emoscore eval fusion --landmarks $(SHARED)/ravdess-landmarks --ravdess $(SHARED)/ravdess-speech-16k

# Every face source; dlib landmarks of the 13.7k photos and the videos are cached in $(FACE_CACHE) (minutes, once).
FACE_CACHE ?= /tmp/emoscore-cache/face
train-visual: setup
	$(BIN)/emoscore train visual --landmarks $(SHARED)/ravdess-landmarks --videos $(SHARED)/ravdess-actor05/videos \
	  --crops $(SHARED)/ravdess-actor05/face-crops --images $(SHARED)/faces-in-the-wild --cache $(FACE_CACHE) \
	  --points all --alignment procrustes --features coords --arch cnn-skip --augment-copies 1 --jitter 0 \
	  --patience 0 --epochs 30 --photo-weight 0.3 --quadrant-loss 0.5 \
	  --calibration both --same-emotion-share 0 --cv-folds 5

train-music: setup
	$(BIN)/emoscore train music --data $(SHARED)/emopia/midis --vgmidi $(SHARED)/vgmidi

# Both music judges without retraining the LSTMs; fluidsynth renders + audio features cached in $(MUSIC_CACHE).
MUSIC_CACHE ?= /tmp/emoscore-cache/music
train-music-judge: setup
	$(BIN)/emoscore train music-judge --data $(SHARED)/emopia/midis --vgmidi $(SHARED)/vgmidi --cache $(MUSIC_CACHE) \
	  --eval-seed 3

# Both judges on 10 composed 30-s pieces per quadrant (seeds 31676..31685), and the property table.
eval-music: setup
	$(BIN)/emoscore eval music --n 10 --seconds 30 --seed 4

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
