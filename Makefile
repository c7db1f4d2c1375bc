# `make demo` runs the main job; `make test` runs the whole suite (what CI runs).
# Both install what is missing first (scripts/deps.sh).

CARGO ?= cargo
# Loom builds with a crate-specific cfg into its own target dir, so it never
# invalidates the normal build (a global `--cfg loom` would break tokio).
LOOM_ENV = RUSTFLAGS="--cfg ldapmux_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom

.PHONY: demo test deps fmt clippy unit doc package features public-api loom model simulate fuzz-short bench bench-core fuzz mutants

# Three real slapd on 127.0.0.1, a pool in front, a kill -9, a restart, a reload and a
# shutdown under load, shown live (one line per second when piped); ends within 40 s.
# `demo` is a feature of ldapmux-cli: the operators' `ldapmux` has no test harness in it.
demo: deps
	$(CARGO) run -q --release -p ldapmux-cli --features demo -- demo

test: deps fmt clippy unit doc package features public-api loom model simulate fuzz-short
	@echo "make test: all checks passed"

deps:
	@./scripts/deps.sh

fmt:
	@echo "== cargo fmt --check"
	$(CARGO) fmt --all --check

clippy:
	@echo "== cargo clippy (warnings denied)"
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# ldapmux's `gssapi` feature is on in the workspace build (tests/e2e turns it
# on), so the GSSAPI tests against a real KDC and Samba's run here too.
unit:
	@echo "== cargo test --workspace"
	$(CARGO) test --workspace

doc:
	@echo "== cargo doc (warnings denied)"
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

# The crates published to crates.io (the same list as in scripts/public-api.sh).
# `cargo package --workspace` would also package the publish = false crates
# (cargo 1.95 skips them only for `cargo publish --workspace`), so they are named.
PUBLISHED = ldapmux-core ldapmux-driver ldapmux ldapmux-blocking
# --no-verify: the manifests, versions and file lists are checked, but the
# packaged crates are not rebuilt (a cold verify build took 2 min 8 s here).
# `make package PACKAGE_FLAGS=` also verifies.
PACKAGE_FLAGS ?= --no-verify

package:
	@echo "== cargo package $(PUBLISHED) $(PACKAGE_FLAGS)"
	$(CARGO) package $(PACKAGE_FLAGS) $(addprefix -p ,$(PUBLISHED))

# Each optional part of the published crates builds, tests and lints alone and
# without the others (the workspace build turns them all on, hiding a missing
# cfg): none, each of metrics / config / dns-srv / gssapi, and all of them.
FEATURE_SETS = ring ring,metrics ring,config ring,dns-srv ring,gssapi ring,metrics,config,dns-srv,gssapi
features:
	@echo "== feature sets of ldapmux and ldapmux-blocking"
	@set -e; for f in $(FEATURE_SETS); do \
	  echo "-- --no-default-features --features $$f"; \
	  $(CARGO) clippy -q -p ldapmux -p ldapmux-blocking --all-targets --no-default-features --features $$f -- -D warnings; \
	done
	$(CARGO) test -q -p ldapmux --lib --no-default-features --features ring

# The checked-in public API listings (docs/api/) still match the code.
public-api:
	@echo "== public API listings (docs/api/)"
	@command -v cargo-public-api >/dev/null 2>&1 || $(CARGO) install cargo-public-api --version 0.52.0 --locked
	./scripts/public-api.sh

loom:
	@echo "== loom checks of the driver (LOOM_MAX_PREEMPTIONS=3)"
	$(LOOM_ENV) $(CARGO) test -p ldapmux-driver --release --test 'loom_*'

model:
	@echo "== stateright model check of the real core"
	$(CARGO) run -q -p ldapmux-model --release -- check

simulate:
	@echo "== seeded deterministic simulation"
	$(CARGO) run -q -p ldapmux-model --release -- simulate --seed 1 --steps 10000

# The full end-to-end benchmark (ldapmux vs raw ldap3, bb8, deadpool on real slapd);
# writes docs/results/benchmarks.md and its charts. `bench-core`: the core's criterion bench.
# `bench` is a feature of ldapmux-cli, as `demo` is.
bench: deps
	$(CARGO) run -q --release -p ldapmux-cli --features bench -- bench --write-docs docs/results

bench-core:
	$(CARGO) bench -p ldapmux-core --bench acquire_release

# Coverage-guided fuzzing of the core's event handling and of configuration /
# URL parsing (tests/fuzz, its own workspace: it builds with sanitizer flags).
# `make test` runs each target for FUZZ_SHORT_SECONDS; `make fuzz` is the long run
# (FUZZ_SECONDS, default 10 minutes per target). cargo fuzz needs nightly flags:
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them (../shared/NOTES.md).
FUZZ_SHORT_SECONDS ?= 30
FUZZ_SECONDS ?= 600
FUZZ = RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir tests/fuzz

fuzz-short:
	@echo "== cargo fuzz, $(FUZZ_SHORT_SECONDS) s per target"
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	$(FUZZ) core_events -- -max_total_time=$(FUZZ_SHORT_SECONDS)
	$(FUZZ) config_and_urls -- -max_total_time=$(FUZZ_SHORT_SECONDS)

fuzz: deps
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	$(FUZZ) core_events -- -max_total_time=$(FUZZ_SECONDS)
	$(FUZZ) config_and_urls -- -max_total_time=$(FUZZ_SECONDS)

# Mutation testing of ldapmux-core and ldapmux-driver (.cargo/mutants.toml says
# which tests judge each mutant). Not in `make test`: it takes about an hour on
# 2 cores. The score and every surviving mutant: docs/results/mutants.md.
mutants:
	@command -v cargo-mutants >/dev/null 2>&1 || $(CARGO) install cargo-mutants --locked
	$(CARGO) mutants -p ldapmux-core -p ldapmux-driver
