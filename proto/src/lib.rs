pub mod legacy;
pub mod mbox;
pub mod mime;
pub mod native;
pub mod pop3;
pub mod sasl;
pub mod smtp;
