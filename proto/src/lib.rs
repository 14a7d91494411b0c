pub mod legacy;
pub mod mbox;
pub mod native;
pub mod sasl;
pub mod smtp;
