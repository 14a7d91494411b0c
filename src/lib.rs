//! Jmail: a small, durable, fast mail server. See docs/ARCHITECTURE.md for the map.

pub mod auth;
pub mod message;
pub mod store;
