#!/usr/bin/env bash
# The Galaxy tarball is what users install, so prove it, not the checkout: build it with `ansible-galaxy collection
# build`, check what it holds against git, install it into an empty collections path, and converge a small topology in a
# sandbox host from a directory outside the checkout that sees only the installed copy. A file missing from the tarball,
# or one that should not be there (a `build_ignore` gap such as `.ansible/` or a cache), fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
bin=$checkout/.venv/bin
work=$(mktemp -d /tmp/wharf-package.XXXXXX)
name="wtpkg$$"
play=$work/play
cleanup() {
  [ -n "${KEEP_WORK:-}" ] && return
  if [ -f "$play/ansible.cfg" ]; then
    (cd "$play" && ANSIBLE_CONFIG=$play/ansible.cfg "$bin/ansible-playbook" sandbox.yml -e wharf_sandbox_state=absent \
      >/dev/null 2>&1) || echo "package: could not remove sandbox $name (bin/wharf-sandbox destroy $name)" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build from the checkout with its own configuration.
ANSIBLE_CONFIG=$checkout/ansible.cfg "$bin/ansible-galaxy" collection build --output-path "$work/dist" . >/dev/null
tarball=$(ls "$work"/dist/wharf-network-*.tar.gz)
tar -tzf "$tarball" | grep -v '/$' | sort > "$work/in-tarball"
git ls-files | sort > "$work/tracked"

# 2. Nothing but tracked files (and the two manifests the build writes) ...
extra=$(comm -23 "$work/in-tarball" "$work/tracked" | grep -vxE 'MANIFEST\.json|FILES\.json' || true)
if [ -n "$extra" ]; then
  echo "package: the tarball holds files git does not track (add them to build_ignore in galaxy.yml):" >&2
  while read -r file; do echo "  $file"; done <<< "$extra" >&2
  exit 1
fi
# ... and every tracked file a user runs: plugins, roles, playbooks, metadata, docs, changelog.
missing=$(grep -E '^(plugins|roles|playbooks|meta|docs|changelogs)/|^(README\.md|CHANGELOG\.rst|LICENSE)$' "$work/tracked" \
  | comm -23 - "$work/in-tarball" || true)
if [ -n "$missing" ]; then
  echo "package: tracked files missing from the tarball (build_ignore too wide?):" >&2
  while read -r file; do echo "  $file"; done <<< "$missing" >&2
  exit 1
fi

# 3. A project outside the checkout: its own ansible.cfg points only at the installed copy.
mkdir -p "$play"
cat > "$play/ansible.cfg" <<EOF
[defaults]
collections_path = $work/collections
inventory = ./hosts.yml
interpreter_python = auto_silent
stdout_callback = default
EOF
cat > "$play/hosts.yml" <<EOF
all:
  hosts:
    $name:
      ansible_connection: wharf.network.sandbox
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
EOF
cat > "$play/sandbox.yml" <<'EOF'
- name: A sandbox host for every inventory host
  hosts: all
  gather_facts: false
  roles:
    - role: wharf.network.sandbox
EOF
cat > "$play/site.yml" <<'EOF'
- name: Converge a small topology with the installed collection
  hosts: all
  gather_facts: false
  vars:
    wharf_topology:
      networks:
        front:
          subnet: 172.28.0.0/24
      containers:
        web:
          networks:
            front: { ipv4_address: 172.28.0.10 }
        app:
          networks:
            front: { ipv4_address: 172.28.0.11 }
  roles:
    - role: wharf.network.topology
  tasks:
    - name: App reaches web by name through the embedded DNS
      ansible.builtin.command: ip netns exec app ping -c1 -W2 web
      changed_when: false
EOF
export ANSIBLE_CONFIG=$play/ansible.cfg
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
cd "$play"
# 4. Install into an empty collections path, with that configuration (the checkout's copy would count as installed).
"$bin/ansible-galaxy" collection install -p "$work/collections" "$tarball" >/dev/null
where=$("$bin/ansible-galaxy" collection list wharf.network 2>/dev/null | grep -m1 '^# ' || true)
case "$where" in
  "# $work/collections/ansible_collections") ;;
  *) echo "package: ansible sees wharf.network at '$where', not only the installed tarball" >&2; exit 1 ;;
esac
"$bin/ansible-doc" -t module wharf.network.converge >/dev/null
"$bin/ansible-playbook" sandbox.yml >/dev/null
first=$("$bin/ansible-playbook" site.yml) || { echo "$first"; echo "package: converge with the tarball failed" >&2; exit 1; }
second=$("$bin/ansible-playbook" site.yml) || { echo "$second"; exit 1; }
echo "$second" | grep -qE "^$name +: ok=[0-9]+ +changed=0 .*failed=0" \
  || { echo "$second"; echo "package: second converge with the tarball changed" >&2; exit 1; }
echo "package: $(basename "$tarball") ($(wc -l < "$work/in-tarball") files) installs, converges and pings, idempotent"
