# Shared helpers for scripts/run and scripts/test (sourced, not executed).

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "error: '$*' needs root (run as root or install sudo)" >&2; return 1; fi
}

# Installs the given Debian packages that are not installed yet (one apt-get update first).
apt_install_missing() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Makes sure cargo is on PATH, installing the stable toolchain with rustup when it is missing.
ensure_rust() {
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  command -v cargo >/dev/null 2>&1 && return 0
  echo "==> Rust is not installed; installing the stable toolchain with rustup" >&2
  apt_install_missing curl ca-certificates
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    --component clippy,rustfmt
  . "$HOME/.cargo/env"
}

# Packages every build needs: a C compiler for the bundled SQLite.
ENGINE_PACKAGES=(build-essential pkg-config ca-certificates)

# A real desktop for the popup tests: private D-Bus session, Xvfb, the dunst notification
# daemon, screenshots, fonts.
DESKTOP_TEST_PACKAGES=(dbus xvfb xauth dunst x11-utils imagemagick fonts-dejavu-core)
