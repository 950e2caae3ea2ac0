#!/usr/bin/env bash
# What the test suite needs beyond Python packages, installed only where missing (Debian):
# PostgreSQL (the state backend tests start a server of their own with initdb/pg_ctl),
# headless Chromium and Node.js (the Mermaid rendering test), and the `mermaid` package
# pinned in tests/mermaid/package-lock.json. Used by `.ci/run` and the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 && ! command -v initdb > /dev/null; then
  missing+=(postgresql)
fi
command -v chromium > /dev/null || missing+=(chromium)
command -v npm > /dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (for the tests)"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" > /dev/null
fi
npm ci --prefix tests/mermaid --no-audit --no-fund --silent
