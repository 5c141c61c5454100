//! The browser scenarios, one file each; `browser.rs` runs every one against every variant.
//!
//! Each is an `async fn(&mut Stage) -> Outcome` that starts the servers it needs on the
//! stage, drives the page, and compares what the page shows with what the server sent. The
//! compare page's scenarios ([`compare`]) run once, against the demo's three variants
//! together: each is an `async fn(&Browser) -> Outcome` that starts the demo it needs.

pub mod compare;
pub mod cross_origin;
pub mod http2;
pub mod max_clients;
pub mod network_cut;
pub mod nginx;
pub mod page;
pub mod publish;
pub mod redis_restart;
pub mod restart;
pub mod tokens;
