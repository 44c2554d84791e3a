#!/usr/bin/env bash
# Installs what Syscall Playground needs, one step at a time, and skips what is already done.
#
#   scripts/setup.sh run     what `make run` needs: system packages, .venv with requirements.txt,
#                            the native extension, the Go program, front-end assets, database
#                            migrations
#   scripts/setup.sh test    what `make test` needs: the same without migrations, plus
#                            requirements-dev.txt, Debian's chromium for the browser tests, and
#                            postgresql and redis-server for the scaled-mode tests (the tests
#                            start private servers of their own; the packages' services are not
#                            used)
#   scripts/setup.sh bench   what `make bench` needs: `run` without migrations, plus linux-perf,
#                            iputils-ping, sockperf, iperf3 and fio
#
# Steps that fetch or build are keyed on their inputs: .stamps/<step> holds a hash of them
# (requirements files, package-lock.json, the native C sources, the venv's interpreter), so a
# second run with unchanged inputs skips them. PYTHON names the interpreter a new .venv is made
# with (default: python3). System packages come from apt: installed directly when run as root,
# otherwise the script stops and prints the command to run.
#
# The functions can be sourced (`source scripts/setup.sh`) without running anything.
set -euo pipefail

VENV=.venv
STAMPS=.stamps
PYTHON=${PYTHON:-python3}
MIN_PYTHON=3.11

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- system packages ---------------------------------------------------------------------------

# The interpreter that compiles the native extension: the venv's if there is one, else $PYTHON.
build_python() {
  if "$VENV/bin/python" -c '' 2>/dev/null; then echo "$VENV/bin/python"; else echo "$PYTHON"; fi
}

# Prints "<major.minor> <sys.base_prefix> <Python.h present: yes|no> <venv+ensurepip: yes|no>".
python_facts() {
  "$1" - <<'PY'
import os, sys, sysconfig
try:
    import ensurepip, venv  # noqa: F401  (Debian ships these in python3.X-venv)
    can_venv = "yes"
except ImportError:
    can_venv = "no"
header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
print(f"{sys.version_info[0]}.{sys.version_info[1]}", sys.base_prefix,
      "yes" if os.path.exists(header) else "no", can_venv)
PY
}

# Prints the apt packages that PROFILE (run|test|bench) needs and this machine lacks, one a line.
missing_system_packages() {
  local profile=$1
  command -v bwrap >/dev/null || echo bubblewrap
  command -v strace >/dev/null || echo strace
  command -v cc >/dev/null || echo gcc
  [ -e /usr/include/stdio.h ] || echo libc6-dev
  command -v npm >/dev/null || echo npm
  # Debian's Go builds the Go program (sysops/native/go) offline: standard library and cgo only.
  command -v go >/dev/null || echo golang-go
  case $profile in
    test)
      [ -x /usr/bin/chromium ] || echo chromium
      # The scaled-mode tests start a private PostgreSQL and Redis of their own (tests/scaled/).
      compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || echo postgresql
      command -v redis-server >/dev/null || echo redis-server
      # Agents on several hosts: network namespaces and veth pairs (tests/helpers/netns.py).
      command -v ip >/dev/null || echo iproute2
      ;;
    bench)
      command -v perf >/dev/null || echo linux-perf
      command -v ping >/dev/null || echo iputils-ping
      command -v sockperf >/dev/null || echo sockperf
      command -v iperf3 >/dev/null || echo iperf3
      command -v fio >/dev/null || echo fio
      ;;
  esac

  local py facts version prefix has_header can_venv
  py=$(build_python)
  if ! command -v "$py" >/dev/null; then
    [ "$py" = python3 ] || die "PYTHON=$py: no such interpreter"
    printf '%s\n' python3 python3-venv python3-dev
    return
  fi
  facts=$(python_facts "$py") || die "$py does not run"
  read -r version prefix has_header can_venv <<<"$facts"
  if [ "$(printf '%s\n' "$MIN_PYTHON" "$version" | sort -V | head -n1)" != "$MIN_PYTHON" ]; then
    die "$py is Python $version; Syscall Playground needs Python >= $MIN_PYTHON (set PYTHON=...)"
  fi
  if [ "$has_header" = no ] || { [ "$py" != "$VENV/bin/python" ] && [ "$can_venv" = no ]; }; then
    # Only Debian's own interpreters (under /usr) can be mended with apt.
    [ "$prefix" = /usr ] || die "$py (under $prefix) lacks Python.h or the venv module;" \
      "reinstall it with its headers, or use Debian's: make ... PYTHON=/usr/bin/python3"
    [ "$has_header" = yes ] || echo "python$version-dev"
    [ "$can_venv" = yes ] || [ "$py" = "$VENV/bin/python" ] || echo "python$version-venv"
  fi
}

apt_install_hint() {
  printf 'sudo apt-get install -y %s\n' "$*"
}

install_system_packages() {
  local profile=$1 pkgs
  pkgs=$(missing_system_packages "$profile" | tr '\n' ' ')
  pkgs=${pkgs% }
  if [ -z "$pkgs" ]; then
    say "system packages: all present"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    printf 'error: missing system packages: %s\nInstall them, then run this again:\n    %s' \
      "$pkgs" "$(apt_install_hint "$pkgs")" >&2
    printf '\n' >&2
    exit 1
  fi
  command -v apt-get >/dev/null || die "missing system packages ($pkgs) and no apt-get to install them"
  say "installing system packages: $pkgs"
  local apt=(apt-get install -y -q --no-install-recommends)
  # shellcheck disable=SC2086  # $pkgs is a list of words
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" $pkgs; then
    say "refreshing the package lists (apt-get update) and trying again"
    apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" $pkgs
  fi
}

# --- stamps --------------------------------------------------------------------------------------

# A hash of the named files' names and contents (a missing file counts as missing).
inputs_key() {
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
    else printf '%s missing\n' "$f"; fi
  done | sha256sum | cut -d' ' -f1
}

stamp_fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_write() { mkdir -p "$STAMPS" && printf '%s\n' "$2" >"$STAMPS/$1"; }

# --- steps ---------------------------------------------------------------------------------------

make_venv() {
  if "$VENV/bin/python" -c '' 2>/dev/null; then
    say "virtualenv: $VENV ($("$VENV/bin/python" -V 2>&1))"
    return
  fi
  say "creating $VENV with $PYTHON ($("$PYTHON" -V 2>&1))"
  "$PYTHON" -m venv --clear "$VENV"
  # Whatever the stamps say was installed into an earlier venv is gone now.
  rm -f "$STAMPS"/pip-* "$STAMPS"/native
}

# pip_install STAMP REQUIREMENTS [FILES IT INCLUDES...]
pip_install() {
  local name=$1 requirements=$2 key
  shift
  key=$(inputs_key "$@" "$VENV/pyvenv.cfg")
  if stamp_fresh "$name" "$key"; then
    say "Python packages from $requirements: up to date"
    return
  fi
  say "installing Python packages from $requirements"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off -q -r "$requirements"
  stamp_write "$name" "$key"
}

build_native() {
  local key sources
  mapfile -t sources < <(find sysops/native -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
  key=$(inputs_key "${sources[@]}" sysops/native/build.py "$VENV/pyvenv.cfg")
  if stamp_fresh native "$key" && [ -n "$(find sysops/native -name '*.so' -print -quit)" ]; then
    say "native extension: up to date"
    return
  fi
  # --force: its own check compares mtimes only, and the compile flags live in build.py.
  say "building the native extension (sysops.native.build)"
  "$VENV/bin/python" -m sysops.native.build --force
  stamp_write native "$key"
}

# The Go program (sysops/native/go → sysops/native/bin/sysgo, git-ignored), built with Debian's Go
# and nothing else: no module proxy, no toolchain download, the build cache under .cache/go.
GO_BINARY=sysops/native/bin/sysgo

build_go() {
  local key sources
  mapfile -t sources < <(find sysops/native/go -type f | LC_ALL=C sort)
  key=$( (inputs_key "${sources[@]}"; go version) | sha256sum | cut -d' ' -f1)
  if stamp_fresh go "$key" && [ -x "$GO_BINARY" ]; then
    say "Go program: up to date"
    return
  fi
  say "building the Go program ($GO_BINARY, $(go version | cut -d' ' -f3))"
  mkdir -p .cache/go sysops/native/bin
  (cd sysops/native/go && env GOENV=off GOPROXY=off GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
    GOCACHE="$PWD/../../../.cache/go/build" GOPATH="$PWD/../../../.cache/go" CGO_ENABLED=1 \
    go build -trimpath -o ../bin/sysgo .)
  stamp_write go "$key"
}

# uPlot comes from npm (exact version in package-lock.json) and is copied into the git-ignored
# static/vendor/; no third-party minified code is committed.
VENDORED=(node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css)

frontend_assets() {
  local key f
  key=$(inputs_key package.json package-lock.json)
  if stamp_fresh npm "$key" && [ -d node_modules/uplot/dist ]; then
    say "front-end packages: up to date"
  else
    say "installing front-end packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=warn
    stamp_write npm "$key"
  fi
  mkdir -p static/vendor
  for f in "${VENDORED[@]}"; do
    cmp -s "$f" "static/vendor/${f##*/}" || cp "$f" static/vendor/
  done
}

migrate() {
  say "applying database migrations"
  "$VENV/bin/python" manage.py migrate --noinput
}

main() {
  local profile=${1:-}
  case $profile in run|test|bench) ;; *) die "usage: scripts/setup.sh run|test|bench" ;; esac
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local started=$SECONDS

  install_system_packages "$profile"
  make_venv
  pip_install pip-runtime requirements.txt
  if [ "$profile" = test ]; then pip_install pip-dev requirements-dev.txt requirements.txt; fi
  build_native
  build_go
  frontend_assets
  # Every profile leaves a working install: run_experiment after `make setup-test` needs tables.
  migrate
  say "setup ($profile) done in $((SECONDS - started)) s"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
