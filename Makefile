# sipwatch: two commands do all set-up on a fresh machine (as root, or with sudo for apt-get):
#   make demo   installs into .venv, analyzes a bundled capture and writes a report
#   make test   installs what the tests need (tshark, sipp, tcpdump, iproute2...), then runs them
SHELL := /bin/bash
# The distribution's python3 when it can make a venv (Debian's: linked statically, built with PGO and LTO),
# else the first python3 on PATH. A --enable-shared build without PGO (pyenv's default) analyzes the benchmark
# capture about 15% slower (docs/benchmarks.md).
PYTHON ?= $(or $(shell /usr/bin/python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo /usr/bin/python3),python3)
VENV := .venv
BIN := $(VENV)/bin
# the demo: SIPp captures of a support day read as one timeline (answered, capacity burst, missing ACK behind
# NAT, one-way audio, STIR/SHAKEN refusal); DEMO_CAPTURE=your.pcap analyzes yours instead
DEMO_CAPTURE ?= captures/capacity_burst.pcap captures/missing_ack.pcap captures/one_way_audio.pcap \
	captures/identity_c_608.pcap captures/answered_rtp.pcap
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
	@for f in $(DEMO_CAPTURE); do test -f $$f || { echo "missing $$f"; exit 1; }; done
	$(BIN)/sipwatch analyze $(DEMO_CAPTURE) --no-calls
	$(BIN)/sipwatch analyze $(DEMO_CAPTURE) -o out/analysis.json
	$(BIN)/sipwatch report $(DEMO_CAPTURE) -o out/postmortem.html
	$(BIN)/sipwatch report $(DEMO_CAPTURE) -o out/postmortem.md
	@echo "demo: post-mortem written to $(CURDIR)/out/postmortem.html (open it in a browser:"
	@echo "      file://$(CURDIR)/out/postmortem.html) and $(CURDIR)/out/postmortem.md; JSON in out/analysis.json"

test: system-deps $(VENV)/.dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check sipwatch tests bench

# bytecode compiled first, as a wheel install would have it (an editable install compiles nothing, and with
# PYTHONDONTWRITEBYTECODE set every run would compile sipwatch again: 0.1 s of each measured run)
bench: system-deps $(VENV)/.dev
	$(BIN)/python -m compileall -q sipwatch
	$(BIN)/python bench/run.py

captures: system-deps
	bash captures/make_captures.sh

clean:
	rm -rf $(VENV) out .pytest_cache

bench-live: system-deps $(VENV)/.dev
	$(BIN)/python -m compileall -q sipwatch
	$(BIN)/python bench/live.py
