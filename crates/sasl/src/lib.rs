//! Server-side SASL mechanisms (work in progress).
