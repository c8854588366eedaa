//! SCM simulator (placeholder).
