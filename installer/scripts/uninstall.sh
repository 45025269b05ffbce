#!/bin/sh
# Removes a Palisade agent that install.sh installed: stops it and its unit, tells main it is gone (main
# revokes it), deletes a host's tenant users (its pool, with whatever still runs as them), the files under
# PREFIX/<name>, and the agent's own system user (palisade-<name>). Run as root, either as
# PREFIX/<name>/uninstall.sh, or from the extracted bundle as ./uninstall.sh [--prefix DIR].
#
# Nothing the agent's user can change runs as root here: the release and state are the agent user's, so
# `deregister` runs as that user, and the units and tenant users are found from root's own records.
set -eu

PREFIX=/opt/palisade
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "uninstall.sh: --prefix needs a directory" >&2; exit 2; }; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run it as root" >&2; exit 2; }
if [ -L "$HERE/current" ]; then
  ROOT=$HERE
else
  case "$PREFIX" in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
  NAME=$("$HERE/release/bin/node" -p "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')).name" \
    "$HERE/bundle.json")
  ROOT=$PREFIX/$NAME
fi
[ -d "$ROOT/state" ] || { echo "uninstall.sh: no agent installed in $ROOT" >&2; exit 2; }
PREFIX=$(dirname "$ROOT")
NAME=$(basename "$ROOT")
# Written by install.sh, root's, in the root-owned install directory (the agent cannot replace it).
AGENT_USER=$(cat "$ROOT/service-user" 2>/dev/null || true)
case "$AGENT_USER" in palisade-*) ;; *) echo "uninstall.sh: $ROOT/service-user names no agent user" >&2; exit 2 ;; esac
NODE=$ROOT/current/bin/node
AGENT=$ROOT/current/app/palisade-agent.mjs

# The unit first, so systemd does not restart what is stopped below. By the agent's name, never by what is in
# state/ (the agent's own, which could name another agent's unit).
for name in "palisade-host-$NAME.service" "palisade-engine-$NAME.service"; do
  [ -e "/etc/systemd/system/$name" ] || continue
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$name" 2>/dev/null || true
  fi
  rm -f "/etc/systemd/system/$name"
  [ -d /run/systemd/system ] && systemctl daemon-reload
done

# Whatever still runs this agent's Node (started by hand, or its tenants): every process whose executable is
# under ROOT — nothing else on the machine runs that file.
ours() {
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null || true)" in "$ROOT"/*) echo "${p#/proc/}" ;; esac
  done
}
pids=$(ours)
if [ -n "$pids" ]; then
  kill -TERM $pids 2>/dev/null || true
  i=0
  while [ -n "$(ours)" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  pids=$(ours)
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
fi

# Tells main (which revokes the agent), as the agent's user with no capability; main unreachable is not fatal.
if ! setpriv --reuid="$AGENT_USER" --regid="$AGENT_USER" --init-groups --inh-caps=-all --bounding-set=-all \
  "$NODE" "$AGENT" deregister --dir "$ROOT/state"; then
  echo "uninstall.sh: main was not told; remove the agent there: palisade hosts|engines remove $NAME" >&2
fi

# A host's tenant users, found by the comment install.sh gave them (agent/host/tenant-isolation.ts userComment):
# whatever still runs as them ended, their files in the shared temporary directories removed, then deleted.
COMMENT="palisade tenant of $(printf '%s' "$ROOT/state" | LC_ALL=C tr -c ' -~' '?' | tr ':' '?')"
for user in $(awk -F: -v c="$COMMENT" '$5 == c && $1 ~ /^palt-/ { print $1 }' /etc/passwd); do
  pkill -KILL -u "$user" 2>/dev/null || true
  i=0
  while pgrep -u "$user" >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  for tmp in /tmp /var/tmp /dev/shm; do
    [ -d "$tmp" ] && find "$tmp" -xdev -user "$user" -delete 2>/dev/null || true
  done
  userdel "$user" && echo "deleted tenant user $user"
done

rm -rf "$ROOT"
echo "removed $ROOT"
rmdir "$PREFIX" 2>/dev/null && echo "removed $PREFIX (no other agent there)" || true
if id -u "$AGENT_USER" >/dev/null 2>&1; then
  # Zombies left for a parent to reap do not count; anything else still running as it keeps the user.
  running=$(ps -o pid=,stat= -u "$AGENT_USER" 2>/dev/null | awk '$2 !~ /^Z/ { printf "%s ", $1 }')
  if [ -n "$running" ]; then
    echo "uninstall.sh: kept user $AGENT_USER: processes $running still run as it" >&2
  else
    userdel "$AGENT_USER" && echo "deleted user $AGENT_USER"
  fi
fi
