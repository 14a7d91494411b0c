//! Jmail: a small, durable, fast mail server. See docs/ARCHITECTURE.md for the map.

pub mod accounts;
pub mod auth;
pub mod caps;
pub mod cli;
pub mod client;
pub mod client_tls;
pub mod compress;
pub mod config;
pub mod conn;
pub mod datadir;
pub mod driver;
pub mod imap;
pub mod legacy;
pub mod message;
pub mod native;
pub mod outbound;
pub mod pop3;
pub mod reply_stream;
pub mod server;
pub mod smtp;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod transfer;
pub mod tui;
pub mod web;
