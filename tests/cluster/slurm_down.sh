#!/usr/bin/env bash
# Stop the daemons slurm_up.sh started, by the PIDs it kept (newest first), then remove STATE.
set -uo pipefail
STATE=${1:-/tmp/refinenet-slurm}
[ -d "$STATE/pids" ] || exit 0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    file="$STATE/pids/$name.pid"
    [ -f "$file" ] || continue
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$file"
done
if [ "${KEEP_STATE:-0}" = 1 ]; then exit 0; fi
rm -rf "$STATE"
