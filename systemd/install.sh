#!/usr/bin/env bash
# Install or upgrade kefu as a systemd service on a Debian host. Run as root; safe to rerun (upgrades).
#
#   systemd/install.sh [--dry-run] [--no-start] SOURCE
#
# SOURCE is what pip installs kefu from: this repository's directory, or a built wheel (kefu-*.whl).
# --dry-run prints every step and changes nothing (no root needed). --no-start enables the units without
# starting them, so that production keys and apps can be made first (OPERATIONS.md, "Keys").
#
# What it does (systemd/OPERATIONS.md, "Installing", explains each step):
#   1. the system user and group kefu (no login, home /var/lib/kefu)
#   2. a virtualenv in /opt/kefu/venv and `pip install --upgrade 'kefu[server] @ SOURCE'` into it
#   3. the units kefu.service and kefu.socket into /etc/systemd/system
#   4. the kernel settings 90-kefu.conf into /etc/sysctl.d, applied with `sysctl --system`
#   5. /etc/kefu/kefu.toml (0640 root:kefu) from the commented example, only if absent; then checked
#   6. /usr/local/bin/kefu: runs the kefu command as user kefu on the service's configuration and data
#   7. systemctl daemon-reload; enable --now kefu.socket kefu.service; on an upgrade, restart the service
#      (the socket stays open: clients queue in its backlog while the new version starts)
set -euo pipefail

readonly VENV=/opt/kefu/venv
readonly ETC=/etc/kefu
readonly STATE=/var/lib/kefu
readonly BACKUPS=/var/backups/kefu
readonly UNIT_DIR=/etc/systemd/system
readonly SYSCTL_DIR=/etc/sysctl.d
readonly DOC_DIR=/usr/share/doc/kefu
readonly ADMIN=/usr/local/bin/kefu
readonly ACCOUNT=kefu
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE

dry_run=0
start=1
source_arg=""

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

while (($#)); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --no-start) start=0 ;;
    -h | --help) usage ;;
    -*) echo "install.sh: unknown option $1" >&2 && usage ;;
    *) [[ -z "$source_arg" ]] || usage; source_arg=$1 ;;
  esac
  shift
done
[[ -n "$source_arg" ]] || usage

step() { printf '\n==> %s\n' "$*"; }

# run CMD...: do it, or with --dry-run print it (shell-quoted, so it can be pasted).
run() {
  if ((dry_run)); then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# install_file SRC DEST MODE: copy if different; returns 0 if DEST changed, 1 if it was already identical.
install_file() {
  if [[ -f "$2" ]] && cmp -s "$1" "$2"; then
    echo "    $2 is up to date"
    return 1
  fi
  run install -D -m "$3" -o root -g root "$1" "$2"
}

check_host() {
  if ((!dry_run)) && ((EUID != 0)); then
    echo "install.sh: run as root (or try --dry-run)" >&2
    exit 1
  fi
  if [[ ! -e "$source_arg" ]]; then
    echo "install.sh: $source_arg does not exist (give the repository directory or a kefu wheel)" >&2
    exit 1
  fi
  source_arg=$(realpath -e "$source_arg")
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: kefu needs Python 3.11 or newer (Debian 12 has it)" >&2
    exit 1
  fi
}

create_account() {
  step "system user $ACCOUNT"
  if getent passwd "$ACCOUNT" >/dev/null; then
    echo "    exists"
  else
    run useradd --system --user-group --home-dir "$STATE" --no-create-home \
      --shell /usr/sbin/nologin --comment "kefu messaging server" "$ACCOUNT"
  fi
}

install_package() {
  step "kefu into $VENV from $source_arg"
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    run apt-get update
    run apt-get install -y python3-venv
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    run python3 -m venv "$VENV"
  fi
  # PIP_INDEX_URL, PIP_FIND_LINKS and PIP_NO_INDEX in the environment reach pip (air-gapped hosts).
  run "$VENV/bin/pip" install --quiet --upgrade "kefu[server] @ file://$source_arg"
  if [[ -f "$source_arg" ]]; then
    # pip keeps an installed wheel of the same version; a rebuilt one must still replace it.
    run "$VENV/bin/pip" install --quiet --force-reinstall --no-deps "$source_arg"
  fi
}

install_units() {
  step "units and kernel settings"
  socket_changed=0
  install_file "$HERE/kefu.service" "$UNIT_DIR/kefu.service" 0644 || true
  if install_file "$HERE/kefu.socket" "$UNIT_DIR/kefu.socket" 0644; then socket_changed=1; fi
  if install_file "$HERE/sysctl.d/90-kefu.conf" "$SYSCTL_DIR/90-kefu.conf" 0644; then
    # Every sysctl.d file in order, so that a later file of the administrator's still wins.
    run sysctl --quiet --system || echo "    warning: some settings were not applied (in a container, expected)" >&2
  fi
  install_file "$HERE/OPERATIONS.md" "$DOC_DIR/OPERATIONS.md" 0644 || true
}

install_config() {
  step "configuration $ETC/kefu.toml"
  run install -d -m 0750 -o root -g "$ACCOUNT" "$ETC"
  run install -d -m 0700 -o "$ACCOUNT" -g "$ACCOUNT" "$STATE" "$BACKUPS"
  if [[ -e "$ETC/kefu.toml" ]]; then
    echo "    exists: kept as it is"
  elif ((dry_run)); then
    echo "+ $VENV/bin/kefu check-config --example | sed 's|^data_dir = .*|data_dir = \"$STATE\"|' > $ETC/kefu.toml"
    echo "+ chown root:$ACCOUNT $ETC/kefu.toml; chmod 0640 $ETC/kefu.toml"
  else
    local tmp
    tmp=$(mktemp)
    "$VENV/bin/kefu" check-config --example | sed "s|^data_dir = .*|data_dir = \"$STATE\"|" >"$tmp"
    install -m 0640 -o root -g "$ACCOUNT" "$tmp" "$ETC/kefu.toml"
    rm -f "$tmp"
  fi
  # Refuse to (re)start on a configuration this version rejects.
  if ((dry_run)); then
    run runuser -u "$ACCOUNT" -- "$VENV/bin/kefu" check-config --config "$ETC/kefu.toml" --data-dir "$STATE"
  else
    runuser -u "$ACCOUNT" -- "$VENV/bin/kefu" check-config --config "$ETC/kefu.toml" --data-dir "$STATE" >/dev/null
  fi
}

install_admin_command() {
  step "the admin command $ADMIN"
  local tmp
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
#!/bin/sh
# kefu as kefu.service runs it: user $ACCOUNT, $ETC/kefu.toml, data in $STATE. Written by install.sh.
# Use absolute paths for backups and restores: the command runs as $ACCOUNT.
set -e
if [ "\$(id -u)" = 0 ]; then
  exec runuser -u $ACCOUNT -- env KEFU_CONFIG=$ETC/kefu.toml KEFU_SERVER_DATA_DIR=$STATE $VENV/bin/kefu "\$@"
fi
exec env KEFU_CONFIG=$ETC/kefu.toml KEFU_SERVER_DATA_DIR=$STATE $VENV/bin/kefu "\$@"
EOF
  if ((dry_run)); then sed 's/^/    | /' "$tmp"; fi
  install_file "$tmp" "$ADMIN" 0755 || true
  rm -f "$tmp"
}

start_services() {
  step "systemd"
  local was_active=0
  if systemctl is-active --quiet kefu.service 2>/dev/null; then was_active=1; fi
  run systemctl daemon-reload
  if ((socket_changed && was_active)); then
    echo "    kefu.socket changed: restarting it (connections are refused for a moment)"
    run systemctl restart kefu.socket
  fi
  if ((!start)); then
    run systemctl enable kefu.socket kefu.service
    echo "    enabled, not started (--no-start): systemctl start kefu.socket kefu.service"
    return
  fi
  run systemctl enable --now kefu.socket kefu.service
  if ((was_active)); then
    # An upgrade: SIGTERM drains the old process; the socket keeps accepting into its backlog meanwhile.
    run systemctl restart kefu.service
  fi
}

main() {
  check_host
  if ((dry_run)); then echo "install.sh: dry run: nothing below is done"; fi
  create_account
  install_package
  install_units
  install_config
  install_admin_command
  start_services
  step "done"
  cat <<EOF
    status:   systemctl status kefu; kefu status
    logs:     journalctl -u kefu
    pins:     $STATE/keys/pins.txt (first start: DEVELOPMENT keys, see OPERATIONS.md "Keys")
    guide:    $DOC_DIR/OPERATIONS.md
EOF
}

main
