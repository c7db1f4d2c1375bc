#!/usr/bin/env bash
# Installs what `make demo` and `make test` need, idempotently, and says what it does.
# Runs as root on a fresh Debian machine; on a machine that has everything it only checks.
set -euo pipefail

say() { printf '[deps] %s\n' "$*"; }

for tool in cargo rustc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "$tool is missing: install a Rust toolchain (rustup) first"; exit 1
  fi
done
for sub in fmt clippy; do
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    say "cargo $sub is missing; trying: rustup component add $([ $sub = fmt ] && echo rustfmt || echo clippy)"
    rustup component add "$([ "$sub" = fmt ] && echo rustfmt || echo clippy)"
  fi
done
say "rust: $(rustc --version)"

# Debian packages the integration tests and the live demo will need (slapd, ldap-utils)
# are installed by later targets; the core, driver and model need none.
need_apt=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
else
  say "Debian packages present: ${*:-none needed}"
fi
