# wharf.network task runner. Every target runs as root on a Linux machine (namespaces need it).
#   make setup   Debian packages, a Python 3.12 venv with the pinned requirements, the collection path
#   make demo    setup + a sandbox host + `ansible-playbook site.yml` + the report (KEEP=1 keeps the sandbox)
#   make fleet-demo  the same on three sandbox hosts joined by an underlay, with overlay networks across them
#   make test    everything CI runs: lint (ruff, ansible-lint), sanity, unit, integration (real namespaces), the Galaxy
#                tarball installed and used, molecule, and the
#                ansible-core 2.19 / Python 3.11 compatibility converge
#   make bench   the benchmarks (not tests; numbers vary by machine)
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

PYTHON_BOOTSTRAP ?= $(shell PYENV_VERSION=3.12.1 command -v python3.12 >/dev/null 2>&1 && echo "env PYENV_VERSION=3.12.1 python3.12" || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := iproute2 nftables iputils-ping util-linux procps netcat-openbsd rsync git shellcheck iperf3 \
	python3-dnspython dnsperf dnsmasq-base aardvark-dns bind9-dnsutils
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# molecule and testinfra call ansible-playbook, ansible-config… by name: the venv comes first
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: ansible-lint package setup debian venv collection demo demo-down fleet-demo fleet-demo-down test lint sanity unit integration molecule compat bench clean-sandboxes

setup: debian venv collection

debian:
	@missing=""
	for pkg in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; done
	if [ -n "$$missing" ]; then
	  echo "installing Debian packages:$$missing"
	  apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	[ -x $(PY) ] || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

collection:
	mkdir -p .collections/ansible_collections/wharf
	ln -sfn ../../.. .collections/ansible_collections/wharf/network

demo: setup
	$(VENV)/bin/ansible-playbook -i inventories/demo playbooks/sandbox.yml
	trap '[ "$${KEEP:-0}" = 1 ] || $(VENV)/bin/ansible-playbook -i inventories/demo playbooks/sandbox.yml -e wharf_sandbox_state=absent >/dev/null' EXIT
	$(VENV)/bin/ansible-playbook -i inventories/demo site.yml
	if [ "$${KEEP:-0}" = 1 ]; then
	  echo "The sandbox host wharf-demo is still running. Look around:"
	  echo "  bin/wharf-sandbox shell wharf-demo        (then: ip netns exec web1 ping web2's address)"
	  echo "  make demo-down                            removes it"
	else
	  echo "The demo sandbox was removed again (KEEP=1 keeps it to look around)."
	fi

demo-down:
	$(VENV)/bin/ansible-playbook -i inventories/demo playbooks/sandbox.yml -e wharf_sandbox_state=absent

# Three sandbox hosts on one underlay segment (inventories/fleet), two overlay networks across them.
fleet-demo: setup
	$(VENV)/bin/ansible-playbook -i inventories/fleet playbooks/sandbox.yml
	trap '[ "$${KEEP:-0}" = 1 ] || $(VENV)/bin/ansible-playbook -i inventories/fleet playbooks/sandbox.yml -e wharf_sandbox_state=absent >/dev/null' EXIT
	$(VENV)/bin/ansible-playbook -i inventories/fleet site.yml
	if [ "$${KEEP:-0}" = 1 ]; then
	  echo "The fleet (node1, node2, node3) is still running. Look around:"
	  echo "  ansible -i inventories/fleet node2 -m command -a 'ip netns exec web2 ping -c1 web3'   (web3 lives on node3)"
	  echo "  make fleet-demo-down                      removes it"
	else
	  echo "The fleet was removed again (KEEP=1 keeps it to look around)."
	fi

fleet-demo-down:
	$(VENV)/bin/ansible-playbook -i inventories/fleet playbooks/sandbox.yml -e wharf_sandbox_state=absent

test: setup lint sanity unit integration package molecule compat

lint: ansible-lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# ansible-lint --profile production (.ansible-lint), part of `make lint` and so of `make test`
ansible-lint:
	$(VENV)/bin/ansible-lint --profile production --nocolor -q

sanity:
	bash tests/sanity.sh

unit:
	$(VENV)/bin/pytest -q tests/unit

integration:
	$(VENV)/bin/pytest -q -n auto --dist loadfile tests/integration

molecule:
	$(VENV)/bin/molecule test -s default
	$(VENV)/bin/molecule test -s fleet

compat:
	bash tests/compat.sh

# the Galaxy tarball: built, checked against git, installed into an empty path, used outside the checkout
package:
	bash tests/package.sh

bench: setup
	$(PY) benchmarks/bench_modules.py
	$(PY) benchmarks/bench_topology.py
	$(PY) benchmarks/bench_overlay.py
	$(PY) benchmarks/bench_dns.py

clean-sandboxes:
	$(PY) bin/wharf-sandbox destroy --prefix wt || true
	$(PY) bin/wharf-sandbox destroy --prefix wb || true
