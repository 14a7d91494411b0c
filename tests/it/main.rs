//! The one integration-test binary: real servers on 127.0.0.1:0, temporary data dirs, real sockets.

mod bad_input;
mod capacity;
mod cli;
mod concurrency;
mod crash;
mod folders;
mod hardening;
mod harness;
mod hostile;
mod large;
mod legacy;
mod limits;
mod names;
mod persistence;
mod pop3;
mod protocol;
mod push;
mod smtp;
mod store;
mod store_model;
mod throttle;
mod tls;
mod transfer;
mod tui;
mod upgrade;
mod wal;
