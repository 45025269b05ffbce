#!/bin/sh
# Installs the Palisade agent of this bundle (made by `palisade installer create`): run as root from the
# directory the tarball was extracted into. Needs no Node.js and no repository: release/ carries both.
#
#   sudo ./install.sh [--prefix DIR] [--no-start] [--tenant-users N]
#
# Lays out PREFIX/<name>/ (PREFIX is /opt/palisade unless given):
#   releases/<version>/   this release (bin/node, app/)      current, committed -> releases/<version>
#   state/                the agent's directory (agent.json, CA, one-time key, later its certificate and data)
#   uninstall.sh          removes all of it again, and tells main
# creates the agent's own system user (palisade-<name>) and, for a host, N tenant users (16 unless given: one per
# tenant it can run, listed in state/tenant-users.json), writes the agent's hardened unit and enables it (and
# starts it, unless --no-start). Without systemd (a container) it prints the command that runs the agent instead.
set -eu

PREFIX=/opt/palisade
START=yes
# A host's tenants each run as one of these users (made here, as root: the running host never writes /etc).
TENANT_USERS=16
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; shift ;;
    --no-start) START=no; shift ;;
    --tenant-users)
      [ $# -ge 2 ] || { echo "install.sh: --tenant-users needs a number" >&2; exit 2; }; TENANT_USERS=$2; shift 2 ;;
    --tenant-users=*) TENANT_USERS=${1#--tenant-users=}; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run it as root (sudo ./install.sh)" >&2; exit 2; }
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { echo "install.sh: this bundle is for Linux x86-64" >&2; exit 2; }
case "$PREFIX" in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
case "$TENANT_USERS" in ''|*[!0-9]*) echo "install.sh: --tenant-users needs a number from 1 to 999" >&2; exit 2 ;; esac
[ "$TENANT_USERS" -ge 1 ] && [ "$TENANT_USERS" -le 999 ] || {
  echo "install.sh: --tenant-users needs a number from 1 to 999" >&2; exit 2
}

NODE=$HERE/release/bin/node
json() { "$NODE" -p "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'))$2" "$1"; }
NAME=$(json "$HERE/bundle.json" .name)
KIND=$(json "$HERE/bundle.json" .kind)
VERSION=$(json "$HERE/release/release.json" .version)
ROOT=$PREFIX/$NAME
UNIT=palisade-$KIND-$NAME.service
[ ! -e "$ROOT" ] || { echo "install.sh: $ROOT exists already (run its uninstall.sh first)" >&2; exit 2; }


# Releases are the agent's (it unpacks upgrades there and swaps the links) and readable by all: a host's tenant
# users run them, none of them may change them.
umask 022
# PREFIX is root's and written by root alone, or another user could swap what root writes under it.
if [ -e "$PREFIX" ] || [ -L "$PREFIX" ]; then
  if [ -L "$PREFIX" ] || [ ! -d "$PREFIX" ] || [ "$(stat -c %u "$PREFIX")" != 0 ] ||
    [ -n "$(find "$PREFIX" -maxdepth 0 -perm /022)" ]; then
    echo "install.sh: $PREFIX must be a directory owned by root and writable by root alone" >&2; exit 2
  fi
else
  mkdir -p "$PREFIX"
  chmod 0755 "$PREFIX"
fi
mkdir -p "$ROOT/releases"
cp -R "$HERE/release" "$ROOT/releases/$VERSION"
chmod -R u=rwX,go=rX "$ROOT/releases"
ln -s "releases/$VERSION" "$ROOT/current"
ln -s "releases/$VERSION" "$ROOT/committed"
cp "$HERE/uninstall.sh" "$ROOT/uninstall.sh"
chmod 0755 "$ROOT/uninstall.sh"

# `install` checks the bundle (expiry, kind) and writes state/ with agent.json, the CA, the key and the unit.
"$ROOT/current/bin/node" "$ROOT/current/app/palisade-agent.mjs" install --bundle "$HERE" --dir "$ROOT/state" \
  --release-root "$ROOT" --json >"$ROOT/install.json" || {
  cat "$ROOT/install.json" >&2; rm -rf "$ROOT"; exit 2
}
START_COMMAND=$(json "$ROOT/install.json" .start)
# The agent's own system user (installer/systemd-unit.ts serviceUserOf): no other agent may change its files.
AGENT_USER=$(json "$ROOT/install.json" .serviceUser)
rm -f "$ROOT/install.json"
if ! id -u "$AGENT_USER" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "Palisade agent $NAME" "$AGENT_USER"
fi
printf '%s\n' "$AGENT_USER" >"$ROOT/service-user"
chmod 0644 "$ROOT/service-user"
# A host's pool of tenant users: palt-<hash of the install>-NN, with the comment the host's own cleanup
# (uninstall.sh's deregister) finds them by (agent/host/tenant-isolation.ts, tenant-user-pool.ts).
if [ "$KIND" = host ]; then
  POOL=$("$NODE" -p "require('crypto').createHash('sha256').update(process.argv[1]).digest('hex').slice(0, 8)" \
    "$ROOT/state")
  COMMENT=$("$NODE" -p "'palisade tenant of ' + process.argv[1].replace(/[^\x20-\x7e]|:/g, '?')" "$ROOT/state")
  LOGIN=/usr/sbin/nologin; [ -x "$LOGIN" ] || LOGIN=/sbin/nologin; [ -x "$LOGIN" ] || LOGIN=/bin/false
  USERS=""
  i=1
  while [ $i -le "$TENANT_USERS" ]; do
    user=$(printf 'palt-%s-%02d' "$POOL" $i)
    # One left by an earlier install here whose uninstall did not finish is this install's again.
    id -u "$user" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --no-log-init \
      --home-dir /nonexistent --shell "$LOGIN" --comment "$COMMENT" "$user"
    USERS="$USERS${USERS:+,}\"$user\""
    i=$((i + 1))
  done
  printf '{"users": [%s]}\n' "$USERS" >"$ROOT/state/tenant-users.json"
  echo "created $TENANT_USERS tenant users palt-$POOL-NN"
fi
chown -R "$AGENT_USER:$AGENT_USER" "$ROOT/state" "$ROOT/releases"
chown -h "$AGENT_USER:$AGENT_USER" "$ROOT/current" "$ROOT/committed"
# ROOT stays root's, sticky and writable by the agent's group: the agent swaps its own links (current, committed)
# in it, but cannot replace uninstall.sh or service-user, which root reads and runs.
chown "root:$AGENT_USER" "$ROOT"
chmod 1775 "$ROOT"
chmod 0700 "$ROOT/state"

echo "installed $KIND agent $NAME (release $VERSION) in $ROOT"
if [ -d /run/systemd/system ]; then
  install -m 0644 "$ROOT/state/$UNIT" "/etc/systemd/system/$UNIT"
  systemctl daemon-reload
  if [ "$START" = yes ]; then
    systemctl enable --now "$UNIT"
    echo "started $UNIT (journalctl -u $UNIT); it enrols with main on its first start"
  else
    systemctl enable "$UNIT"
    echo "enabled $UNIT; start it with: systemctl start $UNIT"
  fi
else
  echo "systemd is not running here; start the agent (as root, it drops to the agent's own user) with:"
  echo "$START_COMMAND"
fi
echo "remove it with: $ROOT/uninstall.sh"
