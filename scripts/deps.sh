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

# Debian packages: the integration tests (tests/harness, tests/e2e) run real OpenLDAP
# servers, so slapd and ldap-utils are always wanted; callers may name more.
# The `gssapi` feature links MIT Kerberos (libkrb5-dev; its bindings are made by
# bindgen, which needs libclang); its tests run a real KDC (krb5-kdc, and
# kadmin.local from krb5-admin-server) and slapd's GSSAPI plugin
# (libsasl2-modules-gssapi-mit); krb5-user gives kinit/klist for debugging.
# The interop_ad tests (tests/e2e/tests/interop_ad.rs) run a Samba AD domain
# controller (samba-ad-dc; samba-ad-provision holds the provisioning templates).
# It brings its own embedded Heimdal KDC, which coexists with MIT's packages.
# The interop_389 tests (tests/e2e/tests/interop_389.rs) create a 389
# Directory Server instance with dscreate (389-ds-base) and put the harness's
# test certificate into its NSS database (openssl pkcs12, certutil and
# pk12util from libnss3-tools).
want_apt=(slapd ldap-utils libkrb5-dev libclang-dev clang pkg-config krb5-kdc
  krb5-admin-server krb5-user libsasl2-modules-gssapi-mit samba-ad-dc
  samba-ad-provision 389-ds-base openssl libnss3-tools "$@")
need_apt=()
for pkg in "${want_apt[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
else
  say "Debian packages present: ${want_apt[*]}"
fi
if [ ! -x /usr/sbin/samba ] || [ ! -x /usr/bin/samba-tool ]; then
  say "samba or samba-tool is still missing after installing samba-ad-dc; giving up"; exit 1
fi
if [ ! -x /usr/sbin/slapd ]; then
  say "slapd is still missing at /usr/sbin/slapd after installing; giving up"; exit 1
fi
