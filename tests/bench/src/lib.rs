//! End-to-end benchmarks (in progress).
