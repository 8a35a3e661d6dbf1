#!/usr/bin/env bash
# Checks systemd/belayd.service: `systemd-analyze verify` must be clean and
# `systemd-analyze security --offline=yes` must score 2.0 or lower; and systemd/belay-watch.service
# (a user unit) must verify clean in --user mode. Verify needs the ExecStart binary to exist, so
# it runs on copies pointing at the freshly built binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:?usage: check.sh path/to/belayd path/to/belay}
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
client=${2:?usage: check.sh path/to/belayd path/to/belay}
client=$(cd "$(dirname "$client")" && pwd)/$(basename "$client")
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
# A user unit: verified by a user-mode analyzer, which needs a runtime directory of its own.
sed "s#/usr/local/bin/belay #$client #" "$here/belay-watch.service" > "$work/belay-watch.service"
watch=$(XDG_RUNTIME_DIR="$work" systemd-analyze --user verify "$work/belay-watch.service" 2>&1 || echo "systemd-analyze --user verify failed")
if [ -n "$watch" ]; then
  echo "$watch"; echo "systemd-check: belay-watch.service does not verify; 1 passed, 2 failed"; exit 1
fi
score=$(systemd-analyze security --offline=yes "$work/belayd.service" 2>/dev/null | sed -n 's/.*Overall exposure level for belayd.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security --offline=yes: exposure $score (must be <= 2.0)"
if awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'; then
  echo "systemd-check: 3 passed, 0 failed"
else
  echo "systemd-check: 2 passed, 1 failed"; exit 1
fi
