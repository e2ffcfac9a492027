# Two doors: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch and torchvision are pinned to the builds this machine's pip cache serves;
# PyPI's newest torchvision does not import beside other torch releases.
TORCH := torch==2.14.1 torchvision==0.29.1
XVFB_DEBS := xvfb libxcb-icccm4 libxcb-keysyms1
DEMO_OUT ?= demo_output

.PHONY: demo test install system-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test]" $(TORCH)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/blastoseg demo -o $(DEMO_OUT)

system-deps:
	@missing=""; for p in $(XVFB_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "The napari tests need the Debian packages:$$missing"; \
	    echo "Run as root:  apt-get install -y$$missing   then run make test again."; exit 1; \
	  fi; \
	fi

test: $(STAMP) system-deps
	$(PY) -m pytest -q -n auto  # one worker per core (pytest-xdist)

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info src/*.egg-info
