//! Helio: a governance gateway for MCP tool calls.
//!
//! The binary is a thin shell over this library (`cli::run`); the modules map
//! to the concerns in DESIGN.md and data flows one way through them:
//! transport (`mcp`) → pipeline → forward → observe. The operator (`dashboard`)
//! and SDK (`sideband`) listeners never share a port with agents.

pub mod approvals;
pub mod audit;
mod auth;
mod batch;
pub mod cli;
pub mod config;
mod dashboard;
mod database;
pub mod demo;
mod era;
mod files;
pub mod gateway;
pub mod govern;
mod mcp;
mod metrics;
mod outbound;
pub mod pipeline;
pub mod plugins;
pub mod reload;
#[cfg(test)]
mod scratch;
mod serve;
mod sideband;
mod sse;
pub mod state;
pub mod strict_json;
pub mod time;
pub mod tools;
pub mod traces;
mod upstreams;
