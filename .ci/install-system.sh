#!/usr/bin/env bash
# Installs the system packages Loom's tests need: Mesa's lavapipe Vulkan driver from
# bookworm-backports (Dawn refuses Debian 12's own Mesa 22) and the Vulkan loader.
set -euo pipefail
if [[ -f /etc/debian_version ]] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat >/etc/apt/sources.list.d/loom-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
