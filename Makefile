# sipwatch: two commands do all set-up on a fresh machine (as root, or with sudo for apt-get):
#   make demo   installs into .venv, analyzes a bundled capture and writes a report
#   make test   installs what the tests need (tshark, sipp, tcpdump, iproute2...), then runs them
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CAPTURE ?= captures/answered_rtp.pcap
# system tools: command -> Debian package
SYSTEM_TOOLS := tshark:tshark sipp:sip-tester tcpdump:tcpdump ip:iproute2 nft:nftables chromium:chromium tcpreplay:tcpreplay sngrep:sngrep
APT := env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: demo test bench bench-live venv dev system-deps lint captures clean

$(BIN)/sipwatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

venv: $(BIN)/sipwatch

$(VENV)/.dev: $(BIN)/sipwatch
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

dev: $(VENV)/.dev

# Installs the system tools the tests and benchmarks drive, only those missing (needs root).
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo 'wireshark-common wireshark-common/install-setuid boolean false' | $$SUDO debconf-set-selections 2>/dev/null || true; \
	  $$SUDO $(APT) update -qq && $$SUDO $(APT) install -y -qq $$missing >/dev/null; \
	fi

demo: $(BIN)/sipwatch
	@test -f $(DEMO_CAPTURE) || { echo "missing $(DEMO_CAPTURE)"; exit 1; }
	$(BIN)/sipwatch analyze $(DEMO_CAPTURE)
	$(BIN)/sipwatch analyze $(DEMO_CAPTURE) -o out/analysis.json
	$(BIN)/sipwatch report $(DEMO_CAPTURE) -o out/postmortem.html
	$(BIN)/sipwatch report $(DEMO_CAPTURE) -o out/postmortem.md
	@echo "demo: post-mortem of $(DEMO_CAPTURE) written to $(CURDIR)/out/postmortem.html (open it in a browser:"
	@echo "      file://$(CURDIR)/out/postmortem.html) and $(CURDIR)/out/postmortem.md; JSON in out/analysis.json"

test: system-deps $(VENV)/.dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check sipwatch tests bench

bench: system-deps $(VENV)/.dev
	$(BIN)/python bench/run.py

captures: system-deps
	bash captures/make_captures.sh

clean:
	rm -rf $(VENV) out .pytest_cache

bench-live: system-deps $(VENV)/.dev
	$(BIN)/python bench/live.py
