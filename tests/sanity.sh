#!/usr/bin/env bash
# Run `ansible-test sanity` for wharf.network offline (only PyPI reachable) and reproducibly.
#
#   bash tests/sanity.sh                 # all the sanity tests chosen below
#   bash tests/sanity.sh --test pep8     # extra arguments go to ansible-test (e.g. --test NAME, -v)
#   KEEP=1 bash tests/sanity.sh          # keep the temporary copy (its path is printed)
#
# Needs the project venv (`make venv`): .venv/bin/ansible-test from the pinned ansible-core, Python 3.12.
#
# Why a copy: ansible-test insists that the collection lives at .../ansible_collections/wharf/network with
# the working directory resolved without symlinks; the repo is checked out anywhere, and the
# .collections/ symlink resolves back to the repo path. So the tracked (and untracked, not ignored) files
# are copied into a temporary ansible_collections/wharf/network, tested there, and removed on exit.
#
# Why the pip cache is seeded: every sanity test with requirements (pep8, pylint, yamllint, import,
# validate-modules, ansible-doc, runtime-metadata, ...) gets a fresh venv created `--without-pip`, and
# ansible-test bootstraps pip into it by running get-pip-<ver>.py, which it downloads from
# ci-files.testing.ansible.com unless ~/.ansible/test/cache/get_pip_<ver>.py exists. That host is not
# reachable here or in CI. `--local` and `--venv` do not help: they only choose the controller Python,
# the per-test sanity venvs are bootstrapped the same way. So the cache file is written here: a small
# stand-in for get-pip that installs pip from the pinned, hash-checked pip wheel (downloaded from PyPI)
# with --no-index, exactly the version ansible-test asks for. The rest of each test's requirements
# (pinned by ansible-test's own sanity.*.txt files) comes from PyPI as usual.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${VENV:-$REPO/.venv}"
ANSIBLE_TEST="$VENV/bin/ansible-test"
PYTHON="$VENV/bin/python"
PY_VERSION=3.12

# The pip that this ansible-core's ansible-test bootstraps into its venvs (get_venv_packages()), and the
# sha256 of its wheel on PyPI. When ansible-core is bumped and asks for another pip, update both.
PIP_VERSION=25.2
PIP_WHEEL=pip-25.2-py3-none-any.whl
PIP_WHEEL_SHA256=6d67a2b4e7f14d8b31b8b52648866fa717f45a1eb70e83002f4331d07e953717

# Sanity tests skipped, with the reason for each: none. All 24 that ansible-test has for a collection run
# offline here (their requirements come from PyPI). changelog lints changelogs/ (config.yaml and the
# fragments); pslint finds nothing to check (no PowerShell) and passes; it would need pwsh, which Debian
# does not package, if a .ps1 file were ever added. Add `NAME  # why` here to skip one.
SKIP_TESTS=()

die() { echo "sanity.sh: $*" >&2; exit 1; }

[ -x "$ANSIBLE_TEST" ] || die "$ANSIBLE_TEST not found: run 'make venv' first"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || die "$PYTHON is not Python $PY_VERSION"

# The shellcheck sanity test needs the shellcheck program; without it ansible-test only warns and
# checks nothing. It is a Debian package (the project's machines are Debian, CI runs as root).
if ! command -v shellcheck >/dev/null; then
  [ "$(id -u)" = 0 ] || die "shellcheck is missing: apt-get install shellcheck"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

# --- the pip bootstrap cache -------------------------------------------------------------------------
wanted_pip="$("$PYTHON" - <<'EOF'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.12"))["pip"])
EOF
)"
[ "$wanted_pip" = "$PIP_VERSION" ] || die "ansible-test bootstraps pip $wanted_pip, this script pins $PIP_VERSION: update PIP_VERSION/PIP_WHEEL/PIP_WHEEL_SHA256"

CACHE="${HOME:?}/.ansible/test/cache"
GET_PIP="$CACHE/get_pip_${PIP_VERSION//./_}.py"
mkdir -p "$CACHE"
if ! echo "$PIP_WHEEL_SHA256  $CACHE/$PIP_WHEEL" | sha256sum --check --status 2>/dev/null; then
  dl="$(mktemp -d)"
  printf 'pip==%s --hash=sha256:%s\n' "$PIP_VERSION" "$PIP_WHEEL_SHA256" >"$dl/req.txt"
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$dl/req.txt" -d "$dl"
  mv "$dl/$PIP_WHEEL" "$CACHE/$PIP_WHEEL"
  rm -rf "$dl"
fi
# ansible-test runs this file (via runpy, as __main__) with pip's arguments, e.g.
#   get_pip_25_2.py --disable-pip-version-check pip==25.2 --no-setuptools --no-wheel
# as get-pip.py would, it runs `pip install --upgrade --force-reinstall ARGS` with pip itself imported
# from the wheel, here restricted to that wheel (no index), so the result is the pinned pip.
cat >"$GET_PIP.tmp" <<EOF
# Written by wharf.network tests/sanity.sh: an offline stand-in for get-pip-$PIP_VERSION.py.
import os
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "$PIP_WHEEL")
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.path.insert(0, WHEEL)
from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", "--upgrade", "--force-reinstall", "--no-index", "--find-links", os.path.dirname(WHEEL)] + args))
EOF
mv "$GET_PIP.tmp" "$GET_PIP"

# --- the temporary collection tree ------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/wharf-sanity.XXXXXX")"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "sanity.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
DEST="$TMP/ansible_collections/wharf/network"
mkdir -p "$DEST"
# tracked files plus untracked ones not ignored (.venv, .collections, tests/output, caches stay out);
# tracked files deleted in the work tree are left out.
(
  cd "$REPO"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      case "$f" in .venv*/* | .collections/* | tests/output/*) continue ;; esac  # even if .gitignore misses them
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null --no-recursion -T - -cf -
) | tar -xf - -C "$DEST"

# --- the collection builds ---------------------------------------------------------------------------
# a broken galaxy.yml (or a missing README.md it names) fails here in seconds, before the long part.
"$VENV/bin/ansible-galaxy" collection build "$DEST" --output-path "$TMP/build" >/dev/null ||
  die "ansible-galaxy collection build failed"
echo "sanity.sh: built $(cd "$TMP/build" && echo *.tar.gz)" >&2

# --- run -------------------------------------------------------------------------------------------
# `make` exports ANSIBLE_CONFIG=<repo>/ansible.cfg (collections_path = ./.collections, the repo itself):
# ansible-test must see only the copy, so no outside Ansible configuration is passed on.
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
cd "$DEST"
skip_args=()
for t in "${SKIP_TESTS[@]}"; do skip_args+=(--skip-test "$t"); done
start=$SECONDS
set +e
# PATH: ansible-test runs ansible-doc etc. from the venv; --python picks the 3.12 interpreter explicitly.
PATH="$VENV/bin:$PATH" "$ANSIBLE_TEST" sanity --python "$PY_VERSION" --color no "${skip_args[@]}" "$@"
rc=$?
set -e
echo "sanity.sh: ansible-test sanity exited $rc after $((SECONDS - start))s" >&2
exit "$rc"
