pub mod legacy;
pub mod native;
