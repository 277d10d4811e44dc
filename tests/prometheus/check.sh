#!/bin/sh
# The shipped alerting rules: valid (promtool check rules), and each alert
# fires when it should and not otherwise (promtool test rules).  Skipped
# (exit 77) where promtool is not installed; scripts/setup.sh installs it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v promtool >/dev/null 2>&1; then
	echo "promtool not found: skipped"
	exit 77
fi
promtool check rules "$here/../../conf/prometheus/alerts.yml"
cd "$here" && promtool test rules alerts_test.yml
