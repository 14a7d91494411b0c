//! JMAP (RFC 8620, RFC 8621): the pure parts. What a request's filter means ([`filter`]) and how JMAP
//! keywords map onto the store's flags ([`keywords`]); the HTTP side and the methods live in the server.

pub mod filter;
pub mod keywords;
pub mod request;
