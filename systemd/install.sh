#!/usr/bin/env bash
# Install, upgrade or remove kefu as a systemd service (Debian/Ubuntu, RHEL/Rocky/Alma/Fedora). Run as root.
#
#   systemd/install.sh [--dry-run] [--wheelhouse DIR] [--sysctl] [--no-start | --allow-development-keys] SOURCE
#   systemd/install.sh [--dry-run] --uninstall [--purge]
#
# SOURCE: what pip installs kefu from, a built wheel (kefu-*.whl) or this repository's directory. Rerun to upgrade.
# --dry-run: print every step, change nothing.  --wheelhouse DIR: install offline, from DIR only (systemd/dist.py).
# --sysctl: also install and apply the host-wide kernel settings in sysctl.d/90-kefu.conf (listed first).
# --no-start: enable the units, do not start them.  --allow-development-keys: start even when the first start
# generates development keys (a trial). Without it, no keys yet: neither enabled nor started; the next step printed.
# --uninstall: stop, disable and remove the units, the venv and the admin command; keep the configuration, the data
# and user kefu. --purge: remove those too (/etc/kefu, /var/lib/kefu with the keys, /var/backups/kefu).
#
# What an install does (systemd/OPERATIONS.md, "Installing and upgrading", explains each step):
#   1. Python 3.11+ with venv from the OS packages if missing (apt-get; dnf or yum); the venv does the rest
#   2. the system user and group kefu (no login, home /var/lib/kefu)
#   3. a virtualenv in /opt/kefu/venv and `pip install --upgrade 'kefu[server] @ SOURCE'` into it
#   4. the units kefu.service and kefu.socket into /etc/systemd/system; with --sysctl, 90-kefu.conf into
#      /etc/sysctl.d, applied with `sysctl --system`
#   5. /etc/kefu/kefu.toml (0640 root:kefu) from the commented example, only if absent; then checked
#   6. /usr/local/bin/kefu: runs the kefu command as user kefu on the service's configuration and data
#   7. systemctl daemon-reload; enable --now kefu.socket kefu.service, unless the keys are missing (see above);
#      on an upgrade, restart the service (the socket stays open: clients queue in its backlog meanwhile)
#
# Environment: KEFU_PYTHON=PATH, the interpreter for the venv (default: the newest python3.N >= 3.11, or python3);
# KEFU_OS_RELEASE=FILE, read instead of /etc/os-release (tests).
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
readonly MIN_PYTHON=3.11
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly SYSCTL_FILE=$HERE/sysctl.d/90-kefu.conf

dry_run=0
start=1                 # 0: --no-start
allow_dev_keys=0        # 1: --allow-development-keys
apply_sysctl=0          # 1: --sysctl
uninstall=0             # 1: --uninstall
purge=0                 # 1: --purge (with --uninstall)
wheelhouse=""
source_arg=""
python=""               # the interpreter the venv is made with (find_python)
socket_changed=0

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

parse_args() {
  while (($#)); do
    case "$1" in
      --dry-run) dry_run=1 ;;
      --no-start) start=0 ;;
      --allow-development-keys) allow_dev_keys=1 ;;
      --sysctl) apply_sysctl=1 ;;
      --wheelhouse)
        (($# > 1)) || usage
        wheelhouse=$2
        shift
        ;;
      --uninstall) uninstall=1 ;;
      --purge) purge=1 ;;
      -h | --help) usage ;;
      -*) echo "install.sh: unknown option $1" >&2 && usage ;;
      *) [[ -z "$source_arg" ]] || usage; source_arg=$1 ;;
    esac
    shift
  done
  if ((uninstall)); then
    [[ -z "$source_arg$wheelhouse" ]] || usage
  elif ((purge)); then
    echo "install.sh: --purge goes with --uninstall" >&2 && usage
  else
    [[ -n "$source_arg" ]] || usage
  fi
}

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
  ((!uninstall)) || return 0
  if [[ ! -e "$source_arg" ]]; then
    echo "install.sh: $source_arg does not exist (give a kefu wheel or the repository directory)" >&2
    exit 1
  fi
  source_arg=$(realpath -e "$source_arg")
  if [[ -n "$wheelhouse" ]]; then
    if [[ ! -d "$wheelhouse" ]]; then
      echo "install.sh: --wheelhouse $wheelhouse is not a directory (systemd/dist.py makes one)" >&2
      exit 1
    fi
    wheelhouse=$(realpath -e "$wheelhouse")
  fi
}

# os_family FILE: debian, rhel or other, from ID and ID_LIKE in an os-release file (read, never sourced).
os_family() {
  local ids
  ids=" $(sed -n 's/^ID\(_LIKE\)\{0,1\}=//p' "$1" 2>/dev/null | tr -d "\"'" | tr '\n' ' ') "
  case "$ids" in
    *" debian "* | *" ubuntu "*) echo debian ;;
    *" rhel "* | *" fedora "* | *" centos "*) echo rhel ;;
    *) echo other ;;
  esac
}

# wheel_python DIR: the Python version (3.N) the compiled wheels in DIR were built for; nothing if none is.
wheel_python() {
  local tag
  tag=$(find "$1" -maxdepth 1 -name '*-cp3*-cp3*-*.whl' -printf '%f\n' | grep -o -m 1 -e '-cp3[0-9]*-' | head -n 1)
  tag=${tag//[-cp]/}
  if [[ -n "$tag" ]]; then echo "3.${tag#3}"; fi
}

# usable_python CMD [X.Y]: CMD runs Python >= MIN_PYTHON (exactly X.Y when given) and can make a venv; prints
# the interpreter's path (not a shim's, as pyenv puts on PATH).
usable_python() {
  "$1" -c '
import sys, ensurepip, venv
want = sys.argv[1]
have = "%d.%d" % sys.version_info[:2]
ok = have == want if want else sys.version_info >= tuple(map(int, sys.argv[2].split(".")))
print(sys.executable) if ok else sys.exit(1)
' "${2:-}" "$MIN_PYTHON" 2>/dev/null
}

# find_python [X.Y]: set python to the first usable interpreter: KEFU_PYTHON, else python3 and python3.N.
find_python() {
  local candidate candidates=(python3 python3.13 python3.12 python3.11)
  if [[ -n "${1:-}" ]]; then candidates=("python$1" python3); fi
  if [[ -n "${KEFU_PYTHON:-}" ]]; then candidates=("$KEFU_PYTHON"); fi
  for candidate in "${candidates[@]}"; do
    if command -v "$candidate" >/dev/null && python=$(usable_python "$candidate" "${1:-}"); then return 0; fi
  done
  return 1
}

# system_packages: a Python for the venv (the one the wheelhouse was built for), from the OS packages if missing.
system_packages() {
  local family want manager packages
  family=$(os_family "${KEFU_OS_RELEASE:-/etc/os-release}")
  want=""
  if [[ -n "$wheelhouse" ]]; then want=$(wheel_python "$wheelhouse"); fi
  step "Python ${want:-$MIN_PYTHON or newer} with venv (OS family: $family)"
  if find_python "$want"; then
    echo "    $python"
    return
  fi
  case "$family" in
    debian) manager=apt-get packages=("python${want:-3}" "python${want:-3}-venv") ;;
    rhel)
      manager=dnf
      if ! command -v dnf >/dev/null && command -v yum >/dev/null; then manager=yum; fi
      packages=("python${want:-$MIN_PYTHON}")
      ;;
    *)
      echo "install.sh: no Python ${want:-$MIN_PYTHON+} with venv, and not a Debian or RHEL family host:" \
        "install one, or name it with KEFU_PYTHON=PATH" >&2
      exit 1
      ;;
  esac
  if [[ "$manager" == apt-get ]]; then run apt-get update; fi
  run "$manager" install -y "${packages[@]}"
  if ((dry_run)); then
    python=${packages[0]}
  elif ! find_python "$want"; then
    echo "install.sh: still no Python ${want:-$MIN_PYTHON+} with venv after installing ${packages[*]}" >&2
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
  step "kefu into $VENV from $source_arg${wheelhouse:+ (offline: from $wheelhouse only)}"
  if [[ ! -x "$VENV/bin/python" ]]; then
    # The venv's python links to this interpreter: the service's user must be able to run it.
    if ((!dry_run)) && ! runuser -u "$ACCOUNT" -- "$python" -c '' 2>/dev/null; then
      echo "install.sh: user $ACCOUNT cannot run $python (a Python under /root?): set KEFU_PYTHON to one it can" >&2
      exit 1
    fi
    run "$python" -m venv "$VENV"
  fi
  local pip=("$VENV/bin/pip" install --quiet)
  # Without --wheelhouse, pip's settings in the environment reach it (PIP_INDEX_URL: the bank's own index).
  if [[ -n "$wheelhouse" ]]; then pip+=(--no-index --find-links "$wheelhouse"); fi
  run "${pip[@]}" --upgrade "kefu[server] @ file://$source_arg"
  if [[ -f "$source_arg" ]]; then
    # pip keeps an installed wheel of the same version; a rebuilt one must still replace it.
    run "${pip[@]}" --force-reinstall --no-deps "$source_arg"
  fi
}

install_units() {
  step "units"
  install_file "$HERE/kefu.service" "$UNIT_DIR/kefu.service" 0644 || true
  if install_file "$HERE/kefu.socket" "$UNIT_DIR/kefu.socket" 0644; then socket_changed=1; fi
  install_file "$HERE/OPERATIONS.md" "$DOC_DIR/OPERATIONS.md" 0644 || true
}

# list_sysctl: each setting in 90-kefu.conf and the host's value now.
list_sysctl() {
  local key value
  sed -n 's/^[[:space:]]*\([a-z][a-z0-9_.-]*\)[[:space:]]*=[[:space:]]*\(.*\)$/\1=\2/p' "$SYSCTL_FILE" |
    while IFS='=' read -r key value; do
      printf '    %-36s %-22s (now: %s)\n' "$key" "$value" "$(sysctl -n "$key" 2>/dev/null | tr '\t' ' ' || true)"
    done
}

install_sysctl() {
  step "host-wide kernel settings"
  if ((!apply_sysctl)); then
    echo "    not changed: they apply to every process on this host. To install $SYSCTL_DIR/90-kefu.conf and"
    echo "    apply it, rerun with --sysctl (OPERATIONS.md, \"Kernel tuning\", says why each):"
    list_sysctl
    return
  fi
  if install_file "$SYSCTL_FILE" "$SYSCTL_DIR/90-kefu.conf" 0644; then
    # Every sysctl.d file in order, so that a later file of the administrator's still wins.
    run sysctl --quiet --system || echo "    warning: some settings were not applied (in a container, expected)" >&2
  fi
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

# development_keys DIR: true, printing why, when the server's keys in DIR (data_dir/keys) are or would be development
# ones: a key type without a file (the first start generates it: kefu.server.identity.keys.load_or_create) or the
# development app's secret, which only that first start writes (ensure_dev_app: dev-app.secret).
development_keys() {
  if [[ -e "$1/dev-app.secret" ]]; then
    echo "$1/dev-app.secret exists: a first start made development app 'dev' (and DEVELOPMENT keys if it had none)"
  elif ! compgen -G "$1/sm2-[1-9]*.key" >/dev/null || ! compgen -G "$1/ed25519-[1-9]*.key" >/dev/null; then
    echo "$1 holds no server keys yet: the first start would generate DEVELOPMENT keys (and app 'dev')"
  else
    return 1
  fi
}

start_services() {
  step "systemd"
  local was_active=0 dev=""
  if systemctl is-active --quiet kefu.service 2>/dev/null; then was_active=1; fi
  dev=$(development_keys "$STATE/keys") || true
  run systemctl daemon-reload
  if ((socket_changed && was_active)); then
    echo "    kefu.socket changed: restarting it (connections are refused for a moment)"
    run systemctl restart kefu.socket
  fi
  if ((was_active && start)); then
    # An upgrade: SIGTERM drains the old process; the socket keeps accepting into its backlog meanwhile.
    run systemctl enable kefu.socket kefu.service
    run systemctl restart kefu.service
    if [[ -n "$dev" ]]; then echo "    warning: $dev; see OPERATIONS.md, \"Keys\"" >&2; fi
  elif [[ -n "$dev" ]] && ((!allow_dev_keys)); then
    echo "    not enabled, not started: $dev."
    echo "    Next, as root (OPERATIONS.md, \"Keys\"):"
    if [[ "$dev" == *dev-app.secret* ]]; then
      cat <<EOF
      kefu keygen                # production keys; then retire each development pin (kefu key list, kefu key retire)
      kefu app add NAME; kefu app revoke dev; rm $STATE/keys/dev-app.secret
      systemctl enable --now kefu.socket kefu.service
EOF
    else
      cat <<EOF
      kefu keygen                # or copy keys made under your key-management procedure into $STATE/keys
      kefu app add NAME          # at least one app, so that no development app is made
      systemctl enable --now kefu.socket kefu.service
EOF
    fi
    echo "    For a trial with development keys, rerun with --allow-development-keys."
  elif ((!start)); then
    run systemctl enable kefu.socket kefu.service
    echo "    enabled, not started (--no-start): systemctl start kefu.socket kefu.service"
  else
    run systemctl enable --now kefu.socket kefu.service
    if [[ -n "$dev" ]]; then echo "    --allow-development-keys: $dev" >&2; fi
  fi
}

# remove PATH...: rm -rf each PATH that exists, saying which were absent.
remove() {
  local path
  for path in "$@"; do
    if [[ ! -e "$path" && ! -L "$path" ]]; then
      echo "    $path: absent"
    elif run rm -rf -- "$path" && ((!dry_run)); then
      echo "    removed $path"
    fi
  done
}

uninstall_all() {
  step "stop and disable the units"
  run systemctl disable --now kefu.socket kefu.service || echo "    (the units were not installed)"
  step "remove the units, $VENV, the admin command and the documentation"
  remove "$UNIT_DIR/kefu.service" "$UNIT_DIR/kefu.socket" "$VENV" "$DOC_DIR"
  if [[ -d "${VENV%/*}" ]]; then run rmdir --ignore-fail-on-non-empty "${VENV%/*}"; fi
  if [[ -e "$ADMIN" ]] && ! grep -q "Written by install.sh" "$ADMIN"; then
    echo "    $ADMIN was not written by install.sh: kept"
  else
    remove "$ADMIN"
  fi
  if [[ -e "$SYSCTL_DIR/90-kefu.conf" ]]; then
    remove "$SYSCTL_DIR/90-kefu.conf"
    echo "    the kernel keeps those settings until the next boot (or set them back with sysctl -w)"
  fi
  run systemctl daemon-reload || echo "    warning: systemctl daemon-reload failed (is systemd running?)" >&2
  if ((purge)); then
    step "--purge: the configuration, the data with its keys, the backups, drop-ins and user $ACCOUNT"
    remove "$ETC" "$STATE" "$BACKUPS" "$UNIT_DIR/kefu.service.d" "$UNIT_DIR/kefu.socket.d"
    if getent passwd "$ACCOUNT" >/dev/null; then run userdel "$ACCOUNT"; fi
  else
    step "kept"
    cat <<EOF
    $ETC (the configuration), $STATE (the store and its keys), $BACKUPS, your drop-ins
    ($UNIT_DIR/kefu.*.d) and user $ACCOUNT. To delete them too: install.sh --uninstall --purge
    (the keys and every message go with them: back them up first).
EOF
  fi
}

main() {
  parse_args "$@"
  check_host
  if ((dry_run)); then echo "install.sh: dry run: nothing below is done"; fi
  if ((uninstall)); then
    uninstall_all
    return
  fi
  if ((apply_sysctl)); then
    step "--sysctl: these host-wide settings go to $SYSCTL_DIR/90-kefu.conf and are applied"
    list_sysctl
  fi
  system_packages
  create_account
  install_package
  install_units
  install_sysctl
  install_config
  install_admin_command
  start_services
  step "done"
  cat <<EOF
    status:   systemctl status kefu; kefu status
    logs:     journalctl -u kefu
    pins:     $STATE/keys/pins.txt (give them to clients out of band)
    guide:    $DOC_DIR/OPERATIONS.md
    remove:   $HERE/install.sh --uninstall (keeps the configuration and data)
EOF
}

# Sourced (the tests call its functions), it only defines them.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
