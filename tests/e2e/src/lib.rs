//! End-to-end tests of ldapmux against real slapd live in `tests/`.
