//! `cargo run -p ldapmux-model --release -- check` (in progress).
fn main() {}
