//! The `ldapmux` command line (in progress).

fn main() {}
