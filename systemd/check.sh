#!/usr/bin/env bash
# Checks systemd/belayd.service: `systemd-analyze verify` must be clean and
# `systemd-analyze security --offline=yes` must score 2.0 or lower. Verify needs the ExecStart
# binary to exist, so it runs on a copy pointing at the freshly built belayd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:?usage: check.sh path/to/belayd}
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-check: systemd-analyze not installed; 0 passed, 1 failed"; exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#/usr/local/bin/belayd#$binary#" "$here/belayd.service" > "$work/belayd.service"
verify=$(systemd-analyze verify "$work/belayd.service" 2>&1 | grep -v -e 'Failed to open /dev/tty' -e 'fsck' || true)
if [ -n "$verify" ]; then
  echo "$verify"; echo "systemd-check: verify reported problems; 1 passed, 1 failed"; exit 1
fi
score=$(systemd-analyze security --offline=yes "$work/belayd.service" 2>/dev/null | sed -n 's/.*Overall exposure level for belayd.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security --offline=yes: exposure $score (must be <= 2.0)"
if awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'; then
  echo "systemd-check: 2 passed, 0 failed"
else
  echo "systemd-check: 1 passed, 1 failed"; exit 1
fi
