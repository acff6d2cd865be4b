//! Unit tests of the pull parser alone.
