//! Client-listener registry and event queues (work in progress).
