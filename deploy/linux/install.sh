#!/bin/sh
# Installs this unpacked release as the systemd service `instrument-agent`.
#   sudo ./install.sh            install or update, enable and start
#   sudo ./install.sh --no-start install only
# Files: /opt/instrument-agent (this folder), /etc/instrument-agent/instrument-agent.yaml
# (kept if present), /var/lib/instrument-agent (working folder, models-data).
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
prefix=/opt/instrument-agent
start=yes
[ "${1:-}" = "--no-start" ] && start=no

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo ./install.sh)" >&2; exit 1; }
command -v systemctl >/dev/null 2>&1 || { echo "install.sh: systemd is needed (systemctl not found)" >&2; exit 1; }

echo "checking SHA256SUMS"
(cd "$here" && sha256sum --quiet -c SHA256SUMS) || { echo "install.sh: the release is damaged (SHA256SUMS mismatch); copy it again" >&2; exit 1; }

echo "checking Node.js and the engine"
"$here/instrument-agent" --version >/dev/null
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
case "$glibc" in
  2.[0-9]|2.[12][0-9]|2.3[0-3])
    if [ ! -f "$here/node_modules/node-llama-cpp/llama/lastBuild.json" ]; then
      echo "glibc $glibc is older than 2.34: the prebuilt llama.cpp binaries cannot load here." >&2
      echo "Build the engine once from the source in this release (needs cmake 3.16+, make, g++, git, npm), then run install.sh again:" >&2
      echo "  (cd $here && node node_modules/node-llama-cpp/dist/cli/cli.js source download --gpu false --noUsageExample)" >&2
      exit 1
    fi ;;
esac

id instrument-agent >/dev/null 2>&1 || useradd --system --home-dir /var/lib/instrument-agent --shell /usr/sbin/nologin instrument-agent
mkdir -p /var/lib/instrument-agent /etc/instrument-agent
chown instrument-agent:instrument-agent /var/lib/instrument-agent
if [ "$here" != "$prefix" ]; then
  rm -rf "$prefix.new"
  cp -a "$here" "$prefix.new"
  rm -rf "$prefix.old"
  [ -d "$prefix" ] && mv "$prefix" "$prefix.old"
  mv "$prefix.new" "$prefix"
fi
if [ -d "$here/models-data" ]; then
  cp -an "$here/models-data" /var/lib/instrument-agent/
  chown -R instrument-agent:instrument-agent /var/lib/instrument-agent/models-data
fi
[ -f /etc/instrument-agent/instrument-agent.yaml ] || cp "$here/instrument-agent.example.yaml" /etc/instrument-agent/instrument-agent.yaml
install -m 0644 "$here/instrument-agent.service" /etc/systemd/system/instrument-agent.service
systemctl daemon-reload
systemctl enable instrument-agent.service >/dev/null
if [ "$start" = yes ]; then
  systemctl restart instrument-agent.service
  echo "started; status: systemctl status instrument-agent; logs: journalctl -u instrument-agent"
fi
echo "smoke test: sudo -u instrument-agent $prefix/instrument-agent smoke --config /etc/instrument-agent/instrument-agent.yaml"
