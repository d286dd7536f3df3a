# pyacemaker: the two commands a user needs are `make campaign` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PYACE := $(VENV)/bin/pyacemaker
SITE   ?= local
CONFIG ?= examples/si-qe.yaml
WORKDIR ?= campaigns/$(basename $(notdir $(CONFIG)))
PYTEST_ARGS ?= --durations=25

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help setup setup-teacher doctor campaign status test bench containers containers-pull containers-push \
        reproduce report package monitor clean distill

help:
	@echo "make campaign [SITE=local|cluster|pbs] [CONFIG=examples/...yaml] [WORKDIR=...] [DETACH=1]"
	@echo "make test | setup | doctor | bench | containers | report | package | monitor | clean"
	@echo "make containers-pull SITE=... | containers-push REGISTRY=host:port [PLAIN_HTTP=1]"
	@echo "make reproduce RELEASE=dist/NAME-VERSION.zip [SITE=...]"

# setup ends with the doctor: the site's and the campaign's needs, checked for real.
setup:
	@bash scripts/setup.sh
	@$(MAKE) --no-print-directory doctor

# The teacher of distillation (torch + CHGNet) in its own Python 3.11 venv, .venv-teacher;
# never imported by the main venv (README, "Distillation").
setup-teacher:
	@bash scripts/setup.d/teacher.sh

doctor:
	@test -x $(PYACE) || { echo "no $(PYACE): run 'make setup' first"; exit 1; }
	@$(PYACE) doctor $(CONFIG) --site site_configs/$(SITE).yaml --workdir $(WORKDIR)

lammps-pace:
	@bash scripts/setup.d/lammps_pace.sh

# DETACH=1: the driver itself runs as a chain of batch jobs (pyacemaker submit; docs/cluster.md)
campaign: setup
	$(PYACE) $(if $(DETACH),submit,run) $(CONFIG) --site site_configs/$(SITE).yaml --workdir $(WORKDIR)

# Distillation (issue 18, in progress): teacher MD, batch labelling, base ACE (README)
DISTILL_CONFIG ?= examples/distill/si-chgnet.yaml
distill: setup setup-teacher
	$(PYACE) distill $(DISTILL_CONFIG) --site $(SITE) --workdir $(if $(filter command line,$(origin WORKDIR)),$(WORKDIR),campaigns/distill-$(basename $(notdir $(DISTILL_CONFIG))))

status:
	$(PYACE) status --workdir $(WORKDIR)

test: setup setup-teacher
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

containers:
	@bash scripts/build_containers.sh

# Pull (and check) the images a site names by digest; push this checkout's built images
# and print the pinned references to paste into a site YAML (docs/cluster.md).
containers-pull: setup
	$(PYACE) images pull --site site_configs/$(SITE).yaml

containers-push: setup
	@test -n "$(REGISTRY)" || { echo "usage: make containers-push REGISTRY=host:port [PLAIN_HTTP=1]"; exit 1; }
	$(PYACE) images push --registry $(REGISTRY) $(if $(PLAIN_HTTP),--plain-http,)

reproduce: setup
	@test -n "$(RELEASE)" || { echo "usage: make reproduce RELEASE=dist/NAME-VERSION.zip [SITE=...]"; exit 1; }
	$(PYACE) reproduce $(RELEASE) --site site_configs/$(SITE).yaml

# The campaign's YAML goes along only when CONFIG is given (make report CONFIG=...); else
# pyacemaker uses <workdir>/campaign.yaml or defaults for the potential's elements.
RELEASE_CONFIG = $(if $(filter command line environment,$(origin CONFIG)),--config $(CONFIG),)

report: setup
	$(PYACE) report --workdir $(WORKDIR) $(RELEASE_CONFIG)

# make package PACKAGE_ARGS="--force --version 1.0.0 --author 'A. Name'"
package: setup
	$(PYACE) package --workdir $(WORKDIR) $(RELEASE_CONFIG) $(PACKAGE_ARGS)

monitor:  # Parsl's web view of a campaign's monitoring db, on this machine only
	@test -f $(WORKDIR)/monitoring.db || { echo "no $(WORKDIR)/monitoring.db: enable monitoring in the site YAML and run a campaign (WORKDIR=...)"; exit 1; }
	$(PY) -c 'import sys; from pyacemaker.execution.monitoring import main; sys.exit(main(sys.argv[1:]))' $(WORKDIR)
	$(VENV)/bin/parsl-visualize --listen 127.0.0.1 --port $${MONITOR_PORT:-8080} sqlite:///$(abspath $(WORKDIR))/monitoring.db

clean:
	rm -rf build dist .pytest_cache
