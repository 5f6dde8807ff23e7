# One command to test (`make test`), one to try it (`make run`). Both build .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_HOME ?= $(CURDIR)/.run

.PHONY: test lint typecheck pytest soak bench run install-user-service clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing actant and its dev tools into $(VENV) (pip's output goes to $(VENV)/install.log)"
	@$(BIN)/python -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@# The build backend's notices (the editable-install warning block) stay in the log unless the install fails.
	@$(BIN)/python -m pip install -q -e '.[dev]' >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check actantd actantctl tests bench
	$(BIN)/ruff format --check actantd actantctl tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

soak: $(STAMP)
	$(BIN)/pytest -q -m soak

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Runs the daemon in the foreground on the bundled configs, state under ./.run (git-ignored).
run: $(STAMP)
	@echo "actantd: home=$(RUN_HOME)/home configs=$(CURDIR)/configs socket=$(RUN_HOME)/actantd.sock"
	@echo "In a second terminal:  export ACTANT_SOCKET=$(RUN_HOME)/actantd.sock; $(BIN)/actantctl agent list"
	$(BIN)/actantd --home $(RUN_HOME)/home --configs $(CURDIR)/configs --socket $(RUN_HOME)/actantd.sock

install-user-service: $(STAMP)
	mkdir -p $(HOME)/.config/systemd/user
	sed 's|@ACTANTD@|$(CURDIR)/$(BIN)/actantd|' systemd/actantd.service > $(HOME)/.config/systemd/user/actantd.service
	cp systemd/actantd.socket $(HOME)/.config/systemd/user/actantd.socket
	-systemctl --user daemon-reload
	@echo "installed; enable with: systemctl --user enable --now actantd.socket"

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache build dist *.egg-info
