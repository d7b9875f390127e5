# Every target uses its own virtualenv, so a fresh machine needs only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench chaos clean

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

# One style for the package, tests and scripts: pyflakes, pycodestyle, import order.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --line-length 120 --select E,F,W,I --target-version py39 \
		--config "lint.isort.split-on-trailing-comma=false" magedl tests scripts

# Installs nginx, curl, wget, aria2 and time from Debian's packages when missing (needs root).
bench: $(VENV)/.installed
	$(PY) scripts/bench.py

# Kills get (one stream and segmented) with SIGKILL at seeded moments, many times, then checks the bytes;
# then downloads from a server whose ranged answers disagree, and checks the md5 vouches for the bytes on disk.
chaos: $(VENV)/.installed
	$(PY) scripts/chaos.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo-out
