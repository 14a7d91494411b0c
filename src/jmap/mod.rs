//! JMAP
