# Shared helpers for the bin/ scripts. Sourced, never executed.
# shellcheck shell=bash

set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
# Everything big and re-usable lives here, outside the checkout, keyed by version.
CACHE_DIR=${CHPLATFORM_CACHE:-/var/cache/chplatform}
export CACHE_DIR
VENV=${CHPLATFORM_VENV:-$ROOT/.venv}
export VENV
# Lab image: bump LAB_IMAGE_VERSION when the recipe in bin/lab changes.
LAB_IMAGE_VERSION=5
LAB_IMAGE=chplatform/debian12-systemd:$LAB_IMAGE_VERSION
export LAB_IMAGE
DEBIAN_MIRROR=${CHPLATFORM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUNDLE_PORT=${CHPLATFORM_BUNDLE_PORT:-8765}
export BUNDLE_PORT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[33mWARNING: %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Debian packages the controller needs: debootstrap (lab image), xmllint (ClickHouse config
# checks), git, PostgreSQL (pytest starts a real one), Chromium + fonts (the UI checks).
# python3-confluent-kafka and python3-prometheus-client: the Kafka lag exporter (roles/prometheus) runs
# on the monitoring host with Debian's python3; its test runs it the same way on the controller.
CONTROLLER_PACKAGES=(debootstrap libxml2-utils git postgresql chromium fonts-liberation python3-confluent-kafka python3-prometheus-client)

apt_install() {
  # apt_install PKG... : install Debian packages on the controller when missing.
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  is_root || die "missing Debian packages on the controller: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or run bin/bootstrap as root"
  log "Installing on the controller: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian 12's Prometheus tools for the rule checks (promtool) and Alertmanager's amtool, unpacked
# from the .deb (nothing installed, no service started), cached by package version.
PROMETHEUS_TOOLS_DEBS=(prometheus=2.42.0+ds-5+deb12u1 prometheus-alertmanager=0.25.0-1+b4)

prometheus_tools() {
  # prometheus_tools TOOL... (promtool, amtool): print each tool's path, one a line, after
  # fetching its package into $CACHE_DIR/tools/<package>-<version>/ when it is not there yet.
  local tool spec pkg ver dir tmp out
  for tool in "$@"; do
    case "$tool" in
      promtool) spec=${PROMETHEUS_TOOLS_DEBS[0]} ;;
      amtool) spec=${PROMETHEUS_TOOLS_DEBS[1]} ;;
      *) die "prometheus_tools: unknown tool '$tool' (promtool or amtool)" ;;
    esac
    pkg=${spec%%=*} ver=${spec#*=}
    dir="$CACHE_DIR/tools/$pkg-$ver"
    if [ ! -x "$dir/usr/bin/$tool" ]; then
      mkdir -p "$CACHE_DIR/tools" || die "cannot create $CACHE_DIR/tools (set CHPLATFORM_CACHE to a writable directory)"
      tmp=$(mktemp -d "$CACHE_DIR/tools/.$pkg.XXXXXX")
      log "Fetching $tool: Debian package $spec, unpacked into $dir (not installed)"
      # apt-get's own messages are shown only when the download fails (the warning about the
      # unsandboxed download as root is noise).
      if ! out=$(cd "$tmp" && apt-get download -q "$spec" 2>&1); then
        is_root && apt-get update -qq
        out=$(cd "$tmp" && apt-get download -q "$spec" 2>&1) || {
          rm -rf "$tmp"
          printf '%s\n' "$out" >&2
          die "cannot download the Debian package $spec for $tool (apt-get download $spec): is the Debian mirror reachable, is that version still published (then update PROMETHEUS_TOOLS_DEBS in bin/lib.sh)?"
        }
      fi
      dpkg-deb -x "$tmp/${pkg}_"*.deb "$tmp/root" || { rm -rf "$tmp"; die "cannot unpack the package $spec"; }
      # Atomic: a concurrent run that got there first wins, ours is dropped.
      mv -T "$tmp/root" "$dir" 2>/dev/null || true
      rm -rf "$tmp"
      [ -x "$dir/usr/bin/$tool" ] || die "the package $spec has no usr/bin/$tool"
    fi
    echo "$dir/usr/bin/$tool"
  done
}

docker_reachable() { docker info >/dev/null 2>&1; }

ensure_docker() {
  # Make sure a Docker engine answers; install and start one when we are allowed to.
  command -v docker >/dev/null 2>&1 || {
    [ "${CHPLATFORM_INSTALL:-auto}" = never ] && die "the docker command is not installed; install Docker's engine (apt-get install docker.io) or run bin/bootstrap as root"
    apt_install docker.io
  }
  docker_reachable && return 0
  if [ -n "${DOCKER_HOST:-}" ] || [ "${CHPLATFORM_INSTALL:-auto}" = never ] || ! is_root; then
    local why
    why=$(docker info 2>&1 | grep -iE 'permission denied|cannot connect|error' | head -n1 || true)
    die "the Docker engine is not reachable (${why:-no answer}). Start it (as root: bin/bootstrap, or 'dockerd &'), or give this user access to the socket (add it to the 'docker' group)."
  fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  log "Starting dockerd (no systemd on this machine: started in the background, log in /var/log/chplatform-dockerd.log)"
  nohup dockerd >/var/log/chplatform-dockerd.log 2>&1 &
  local i
  for i in $(seq 1 60); do docker_reachable && return 0; sleep 1; done
  die "dockerd did not answer within 60 s; see /var/log/chplatform-dockerd.log"
}

ensure_venv() {
  # The controller's Python tools, pinned in requirements.txt; re-installed only when it changes.
  local stamp="$VENV/.requirements.sha256" want
  want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "Creating the Python environment $VENV from requirements.txt"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt"
  "$VENV/bin/pip" install -q --no-deps -e "$ROOT"
  echo "$want" >"$stamp"
}

activate_venv() {
  mkdir -p -m 0700 "${CHPLATFORM_LAB_STATE:-$HOME/.local/share/chplatform/lab}/secrets"
  ensure_venv
  export PATH="$VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
}
