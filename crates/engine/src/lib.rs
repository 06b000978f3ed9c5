//! Ironrod's cache engine (work in progress).
