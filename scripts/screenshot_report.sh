#!/usr/bin/env bash
# Screenshot of a `stance-watch timeseries` report page with headless Chromium (offline:
# the page is self-contained). Debian: `apt-get install -y chromium`.
#
#   bash scripts/screenshot_report.sh runs/seeds/report/report.html docs/report.png [1200,2400]
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 REPORT_HTML OUT_PNG [WIDTH,HEIGHT]" >&2
    exit 2
fi
report="$(realpath "$1")"
out="$(realpath -m "$2")"
size="${3:-1200,2400}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$browser" ]]; then
    echo "no Chromium found: apt-get install -y chromium" >&2
    exit 1
fi
[[ -f "$report" ]] || { echo "no such file: $report" >&2; exit 1; }

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="$size" \
    --screenshot="$out" "file://$report" 2>/dev/null
echo "wrote $out"
