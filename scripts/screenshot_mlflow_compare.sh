#!/usr/bin/env bash
# Screenshot of the MLflow UI's compare-model-versions page for two registered versions.
#
# Usage: scripts/screenshot_mlflow_compare.sh VERSION_A VERSION_B OUT.png
#   (or `make mlflow-screenshot VERSIONS="3 5" PNG=docs/mlflow-compare.png`)
#
# Starts `mlflow ui` on a free 127.0.0.1 port over the store the pipeline uses
# (pipeline.tracking: ./mlflow.db unless MLFLOW_TRACKING_URI is set), opens
# #/compare-model-versions for the two versions of params.yaml mlflow.registered_model
# in headless Chromium (Debian package `chromium`), writes the PNG and stops the
# server it started. Run from the repository root with the project's Python on PATH.
# Environment: CHROMIUM (default: chromium), WINDOW (default: 1600,1000),
# BUDGET_MS (Chromium's virtual time budget, default 15000).
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 VERSION_A VERSION_B OUT.png" >&2
    exit 2
fi
version_a=$1 version_b=$2 out=$3
chromium=${CHROMIUM:-chromium}
window=${WINDOW:-1600,1000}
budget=${BUDGET_MS:-15000}
python=${PYTHON:-python}

if ! command -v "$chromium" >/dev/null; then
    echo "$0: '$chromium' not found; install it with: apt-get install -y chromium" >&2
    exit 1
fi

# The store, the model name, the two versions' run ids (the page's URL needs them) and
# a free port, from the project's own settings.
read -r store query port < <(
    "$python" - "$version_a" "$version_b" <<'EOF'
import json, socket, sys, urllib.parse
from mlflow import MlflowClient
from pipeline import tracking
from pipeline.config import load_section

name = load_section("mlflow", tracking.MlflowParams).registered_model
client = MlflowClient(tracking_uri=tracking.tracking_uri())
runs = {v: client.get_model_version(name, v).run_id for v in sys.argv[1:]}
with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
# The UI's own encoding: name=JSON(encodeURIComponent(name)), runs=JSON({version: run id}).
query = urllib.parse.urlencode(
    {"name": json.dumps(urllib.parse.quote(name)), "runs": json.dumps(runs, separators=(",", ":"))},
    quote_via=urllib.parse.quote,
)
print(tracking.tracking_uri(), query, port)
EOF
)

workdir=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        # The server and its workers share the process group we started it in.
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# setsid: its own process group, so cleanup reaches the workers too.
MLFLOW_DISABLE_TELEMETRY=true setsid mlflow ui --backend-store-uri "$store" \
    --host 127.0.0.1 --port "$port" >"$workdir/mlflow.log" 2>&1 &
server_pid=$!

url="http://127.0.0.1:$port"
for _ in $(seq 120); do
    if curl -fsS "$url/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "$0: mlflow ui exited:" >&2
        cat "$workdir/mlflow.log" >&2
        exit 1
    fi
    sleep 0.5
done
curl -fsS "$url/health" >/dev/null || { echo "$0: mlflow ui not ready" >&2; exit 1; }

page="$url/#/compare-model-versions?$query"
mkdir -p "$(dirname "$out")"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$workdir/chromium" --screenshot="$out" --window-size="$window" \
    --virtual-time-budget="$budget" "$page" >"$workdir/chromium.log" 2>&1 || {
    echo "$0: chromium failed:" >&2
    cat "$workdir/chromium.log" >&2
    exit 1
}
[[ -s $out ]] || { echo "$0: no screenshot written to $out" >&2; exit 1; }
echo "$out: $page"
