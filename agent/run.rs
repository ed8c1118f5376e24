//! The `check` pipeline as one library call (placeholder while the CLI moves here).
