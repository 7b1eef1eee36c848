#!/usr/bin/env bash
# Renders the PNG icons from callpop.svg (needs rsvg-convert from Debian's librsvg2-bin).
# The PNGs are committed, so builds do not need this; run it after editing the SVG.
set -euo pipefail
cd "$(dirname "$0")"
# Names and sizes Tauri's bundler expects; icon.png is the window/notification icon.
rsvg-convert -w 512 -h 512 callpop.svg -o icon.png
rsvg-convert -w 256 -h 256 callpop.svg -o 128x128@2x.png
rsvg-convert -w 128 -h 128 callpop.svg -o 128x128.png
rsvg-convert -w 32 -h 32 callpop.svg -o 32x32.png
# Tray icons: the app icon with a status badge (healthy, degraded, offline) or dimmed (paused).
badge() { # name colour
  sed "s|</svg>|<circle cx=\"412\" cy=\"412\" r=\"92\" fill=\"$2\" stroke=\"#ffffff\" stroke-width=\"28\"/></svg>|" callpop.svg \
    | rsvg-convert -w 64 -h 64 -o "tray-$1.png"
}
badge healthy '#16a34a'
badge degraded '#f59e0b'
badge offline '#dc2626'
sed -e 's|stop-color="#2563eb"|stop-color="#6b7280"|' -e 's|stop-color="#0891b2"|stop-color="#4b5563"|' \
    -e 's|</svg>|<g fill="#ffffff" stroke="#4b5563" stroke-width="20"><rect x="330" y="330" width="54" height="150" rx="14"/><rect x="410" y="330" width="54" height="150" rx="14"/></g></svg>|' \
    callpop.svg | rsvg-convert -w 64 -h 64 -o tray-paused.png
