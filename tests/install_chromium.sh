#!/usr/bin/env bash
# Installs Debian's Chromium if it is missing, for the headless browser checks of the twin report.
exec "$(dirname "$0")/../cluster/apt_install.sh" chromium 'command -v chromium' "the browser tests of the report"
