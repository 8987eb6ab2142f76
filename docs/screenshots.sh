#!/usr/bin/env bash
# Regenerate the screenshots in docs/ (ui-runs.png, ui-run.png, ui-step.png): the browser test of
# `pipec ui` (tests/test_ui.py) keeps what headless Chromium saw. Needs what `bash .ci/test` sets
# up (.venv, the browser tool environment, chromium and graphviz).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
PIPEC_UI_SCREENSHOTS="$repo/docs" .venv/bin/python -m pytest -q -x tests/test_ui.py -k real_browser
ls -l docs/ui-*.png
