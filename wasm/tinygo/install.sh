#!/usr/bin/env bash
# Installs TinyGo v0.41.1 for building latchkey's Wasm guests.
#
# No prebuilt TinyGo binary can be fetched here, so it is built from source:
#   - Debian's LLVM 19 (unmodified) + wasi-libc + binaryen via apt-get,
#   - TinyGo's source from the Go module proxy (go mod download),
#   - `go build -tags=llvm19` in a writable copy of that module.
#
# Idempotent: Debian packages are checked with dpkg -s (no apt work when all
# are present) and the build is skipped when <dir>/bin/tinygo already runs.
#
# Where it goes: ${LATCHKEY_TOOLS_DIR:-$HOME/.cache/latchkey}/tinygo-0.41.1
#
# Output: progress on stderr; on stdout only two shell lines, so callers can
#   eval "$(wasm/tinygo/install.sh)"
# to get TINYGOROOT and PATH:
#   export TINYGOROOT='<dir>'
#   export PATH='<dir>/bin':"$PATH"
set -euo pipefail

TINYGO_MODULE=github.com/tinygo-org/tinygo
TINYGO_VERSION=v0.41.1
# Keep in sync with /work/shared/TOOLCHAIN.md ("TinyGo").
DEB_PACKAGES=(llvm-19-dev clang-19 libclang-19-dev lld-19 libclang-rt-19-dev-wasm32 wasi-libc binaryen)

TOOLS_DIR="${LATCHKEY_TOOLS_DIR:-${HOME:?HOME or LATCHKEY_TOOLS_DIR must be set}/.cache/latchkey}"
DEST="${TOOLS_DIR}/tinygo-${TINYGO_VERSION#v}"
BIN="${DEST}/bin/tinygo"

log() { printf 'tinygo/install.sh: %s\n' "$*" >&2; }

# Never depend on the caller's cwd (and never touch a go.mod found there).
cd /

# --- 1. Debian packages -----------------------------------------------------
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  # dpkg -s exits 0 also for removed-but-configured packages; require "installed".
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { log "need root (or sudo) to apt-get install ${missing[*]}"; exit 1; }
    SUDO=(sudo)
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  log "Debian packages present"
fi

# --- 2. TinyGo itself ---------------------------------------------------------
if "$BIN" version >/dev/null 2>&1; then
  log "already installed: $("$BIN" version)"
else
  command -v go >/dev/null || { log "go not found in PATH"; exit 1; }
  # A clean Go environment for these steps: no caller GOFLAGS (e.g. -mod=vendor),
  # no toolchain switching.
  export GOTOOLCHAIN=local GOFLAGS=

  log "go mod download ${TINYGO_MODULE}@${TINYGO_VERSION}"
  src_dir=$(go mod download -json "${TINYGO_MODULE}@${TINYGO_VERSION}" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -n "$src_dir" && -f "$src_dir/go.mod" ]] || { log "could not locate downloaded module dir"; exit 1; }

  mkdir -p "$TOOLS_DIR"
  work=$(mktemp -d "${TOOLS_DIR}/.tinygo-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "copying $src_dir -> $work (final: $DEST)"
  cp -R "$src_dir/." "$work/"
  chmod -R u+w "$work"          # the module cache is read-only
  mkdir -p "$work/src/net"      # a git submodule the module zip lacks; must exist

  log "building tinygo (go build -tags=llvm19), takes about a minute"
  (cd "$work" && GOFLAGS='-mod=mod -buildvcs=false' go build -tags=llvm19 -o "$work/bin/tinygo" .) >&2
  "$work/bin/tinygo" version >&2

  # Replace any broken/partial previous install atomically-ish.
  rm -rf "$DEST"
  mv "$work" "$DEST"
  trap - EXIT
  log "installed: $("$BIN" version)"
fi

log "tinygo:     $BIN"
log "TINYGOROOT: $DEST"
printf "export TINYGOROOT='%s'\n" "$DEST"
printf "export PATH='%s':\"\$PATH\"\n" "$DEST/bin"
