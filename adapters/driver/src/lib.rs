//! Runtime-agnostic thread-safe driver around [`ldapmux_core::Pool`] (in progress).
