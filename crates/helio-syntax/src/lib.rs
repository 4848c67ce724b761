//! The small grammars of helio.yaml, in one implementation that both sides
//! of the WIT boundary use: the host (configuration, redaction, the
//! `tool-call.argument` import) and the built-in policy stages (their own
//! configuration, compiled to WebAssembly). A path or a duration therefore
//! means the same thing wherever it is written.

#![deny(unsafe_code)]

pub mod argpath;
pub mod duration;
pub mod suggest;
