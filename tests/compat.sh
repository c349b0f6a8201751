#!/usr/bin/env bash
# The collection supports ansible-core >= 2.19 on Debian 12's Python 3.11: converge the demo topology with exactly
# that (a venv of its own), twice, in a sandbox host of its own; the second run must report changed=0.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-compat
PYTHON311=$(PYENV_VERSION=3.11.7 command -v python3.11 || command -v python3)
[ -x $VENV/bin/ansible-playbook ] || {
  "$PYTHON311" -m venv $VENV
  $VENV/bin/pip install -q --disable-pip-version-check "ansible-core==2.19.14"
}
# the embedded DNS resolver runs with this interpreter: the oldest dnspython we support, Debian 12's
$VENV/bin/python -c "import dns.version" 2>/dev/null || $VENV/bin/pip install -q --disable-pip-version-check "dnspython==2.3.0"
name="wtcompat$$"
work=$(mktemp -d)
trap '$VENV/bin/ansible-playbook -i "$work" playbooks/sandbox.yml -e wharf_sandbox_state=absent >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
sed "s/wharf-demo:/$name:/" inventories/demo/hosts.yml > "$work/hosts.yml"
cp -r inventories/demo/group_vars "$work/"
export ANSIBLE_CONFIG=$PWD/ansible.cfg
version=$($VENV/bin/ansible --version)  # whole, then its first line: `| head -1` breaks the pipe under ansible
echo "compat: ${version%%$'\n'*}, $($VENV/bin/python --version)"
$VENV/bin/ansible-playbook -i "$work" playbooks/sandbox.yml >/dev/null
first=$($VENV/bin/ansible-playbook -i "$work" site.yml)
echo "$first" | grep -q "all as expected" || { echo "$first"; echo "compat: report not as expected" >&2; exit 1; }
second=$($VENV/bin/ansible-playbook -i "$work" site.yml --skip-tags report)
echo "$second" | grep -qE "$name +: ok=[0-9]+ +changed=0 .*failed=0" || { echo "$second"; echo "compat: second run changed" >&2; exit 1; }
echo "compat: ansible-core 2.19 on Python 3.11 converges the demo and is idempotent"
