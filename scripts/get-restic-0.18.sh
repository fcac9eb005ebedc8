#!/bin/bash
# Fetches Debian 13's restic 0.18 client (a static Go binary that runs on Debian 12) without
# touching the system's apt state:  scripts/get-restic-0.18.sh [DEST]  (default /tmp/restic-0.18/restic)
set -euo pipefail
DEST=${1:-/tmp/restic-0.18/restic}
[ -x "$DEST" ] && { "$DEST" version; exit 0; }
A=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W/lists/partial" "$W/cache/archives/partial" "$W/dl" "$(dirname "$DEST")"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $A trixie main" >"$W/sources.list"
O=(-o "Dir::Etc::SourceList=$W/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$W/lists" -o "Dir::Cache=$W/cache")
apt-get "${O[@]}" update -q >/dev/null 2>&1
(cd "$W/dl" && apt-get "${O[@]}" download restic >/dev/null 2>&1)
dpkg -x "$W"/dl/restic_*.deb "$W/x"
cp "$W/x/usr/bin/restic" "$DEST"
"$DEST" version
