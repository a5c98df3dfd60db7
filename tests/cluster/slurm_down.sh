#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/cluster/slurm_up.sh.
#
# Jobs still known to the cluster are cancelled first (scancel by job id), then slurmd, slurmctld and, only
# if slurm_up.sh started it, munged are stopped by the PIDs in their pid files: TERM, then KILL after a
# bounded wait. Never by process name. The /etc/slurm links are removed when they point into the scratch
# dir. Idempotent: with nothing running it does nothing and exits 0.
#
# Environment (all optional):
#   RBIQA_SLURM_DIR    the scratch dir given to slurm_up.sh                          [/tmp/rbiqa-slurm]
#   RBIQA_SLURM_PURGE  1: also delete the scratch dir (state, spool, logs)           [0]
set -euo pipefail

SCRATCH="${RBIQA_SLURM_DIR:-/tmp/rbiqa-slurm}"
PURGE="${RBIQA_SLURM_PURGE:-0}"
CONF_DIR=/etc/slurm

[[ "$(id -u)" -eq 0 ]] || { echo "slurm_down: ERROR: must run as root" >&2; exit 1; }

# pid_of PIDFILE COMM: print the pid in PIDFILE if it is a live process named COMM, else nothing.
pid_of() {
  local pid
  [[ -s "$1" ]] || return 0
  pid="$(tr -dc '0-9' <"$1")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]; then
    echo "$pid"
  fi
}

# stop PIDFILE COMM: TERM the daemon, wait up to 15 s, then KILL it and wait up to 5 s more.
stop() {
  local pid i
  pid="$(pid_of "$1" "$2")"
  if [[ -z "$pid" ]]; then
    rm -f "$1"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm_down: $2 (pid $pid) ignored TERM for 15 s, sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm_down: ERROR: $2 (pid $pid) is still running" >&2
    return 1
  fi
  rm -f "$1"
  echo "slurm_down: stopped $2 (pid $pid)"
}

# Cancel the test cluster's jobs while slurmctld can still do it, so no job outlives the cluster.
if [[ -n "$(pid_of "$SCRATCH/run/slurmctld.pid" slurmctld)" ]]; then
  mapfile -t jobs < <(timeout 10 squeue -h -o %A 2>/dev/null || true)
  if ((${#jobs[@]})); then
    echo "slurm_down: cancelling jobs ${jobs[*]}"
    timeout 10 scancel "${jobs[@]}" || true
    for ((i = 0; i < 100; i++)); do
      [[ -z "$(timeout 10 squeue -h -t running,completing -o %A 2>/dev/null || true)" ]] && break
      sleep 0.1
    done
  fi
fi

rc=0
stop "$SCRATCH/run/slurmd.pid" slurmd || rc=1
stop "$SCRATCH/run/slurmctld.pid" slurmctld || rc=1
# munged: only the one slurm_up.sh started (its pid was copied to the scratch dir), and only while
# that pid is still the one in munged's own pid file.
if [[ -s "$SCRATCH/run/munged.pid" ]]; then
  ours="$(tr -dc '0-9' <"$SCRATCH/run/munged.pid")"
  current="$(pid_of /run/munge/munged.pid munged)"
  if [[ -n "$current" && "$current" == "$ours" ]]; then
    stop /run/munge/munged.pid munged || rc=1
  fi
  rm -f "$SCRATCH/run/munged.pid"
fi

for name in slurm.conf gres.conf; do
  link="$CONF_DIR/$name"
  if [[ -L "$link" && "$(readlink "$link")" == "$SCRATCH/etc/$name" ]]; then
    rm -f "$link"
  fi
done

if [[ "$PURGE" == 1 && $rc -eq 0 ]]; then
  rm -rf -- "$SCRATCH"
fi
exit "$rc"
