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
ENGINE_PACKAGES=(build-essential pkg-config ca-certificates iproute2)

# What the Tauri desktop app links against (WebKitGTK, GTK, the tray's appindicator).
DESKTOP_BUILD_PACKAGES=(libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev libsoup-3.0-dev
  libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev libxdo-dev libdbus-1-dev file)

# A real desktop for the popup, window and UI tests: private D-Bus session, Xvfb, the dunst
# notification daemon, WebKit's WebDriver, Debian's Chromium, screenshots, fonts.
DESKTOP_TEST_PACKAGES=(dbus dbus-x11 xvfb xauth dunst x11-utils imagemagick fonts-dejavu-core
  webkit2gtk-driver gnome-keyring chromium)

# Builds the window's web UI into ui/dist (the desktop binary embeds it), installing the npm
# packages from the lock file when they are missing or stale.
build_ui() {
  command -v npm >/dev/null 2>&1 || apt_install_missing nodejs npm
  (
    cd ui
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      # Not `npm ci`: npm 11 rejects a lock without every platform's optional rollup
      # binary, which the registry has not always listed (https://github.com/npm/cli/issues/4828).
      # `npm install` installs the locked versions; where the registry lists more platforms'
      # binaries than the lock, it adds them to the lock (committed once seen, 2026-11-24).
      npm install --no-audit --no-fund --loglevel=error
    fi
    npm run --silent build >/dev/null
  )
}

# tauri-driver (WebDriver for the desktop app), from crates.io when it is missing.
ensure_tauri_driver() {
  command -v tauri-driver >/dev/null 2>&1 && return 0
  echo "==> installing tauri-driver" >&2
  cargo install tauri-driver --locked --quiet
}
