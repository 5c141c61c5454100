//! sse-core: everything the three SSE idioms share, so that the idiom crates differ only
//! where the idiom differs.
//!
//! - [`event`]: the event model, and the normalisation that keeps data from injecting fields.
//! - [`hub`]: the interface between idioms and storage; [`log`]: the history and live feed
//!   every hub serves from; [`memory`] and [`redis_hub`]: the in-memory and Redis Streams hubs.
//! - [`service`]: admission, `welcome`/`reset` frames, publish and metrics replies.
//! - [`request`], [`reply`]: a request as the contract reads it, and a response before a
//!   framework writes it, so that the rules below are written once for three frameworks.
//! - [`publish`], [`cors`], [`routes`]: the HTTP rules of the contract; [`topic`] and
//!   [`auth`]: who may see and publish which events.
//! - [`transport`], [`connection`], [`tls`]: the hyper server loop axum and warp share, and
//!   what every variant does to its sockets (the write timeout, TLS with HTTP/2).
//! - [`ticker`], [`config`], [`metrics`], [`trim`], [`assets`], [`cli`]: the rest of a server.
//!
//! Error policy: nothing here panics on input. Bad requests become a [`Reply`] with a JSON
//! error body; bad flags stop the server at start. The few `expect`s mark states that the
//! types already rule out, each with its reason.

pub mod assets;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connection;
pub mod cors;
pub mod end;
pub mod event;

pub mod frame;
pub mod hub;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod publish;
pub mod redis_hub;
pub mod reply;
pub mod request;
pub mod routes;
pub mod service;
pub mod ticker;
pub mod tls;
pub mod topic;
pub mod transport;
pub mod trim;

pub use config::Config;
pub use event::{Draft, Event, EventId, EventName};
pub use hub::Hub;
pub use reply::{Reply, STREAM_HEADERS};
pub use request::{Headers, RequestHead};
pub use service::{Admission, Opening, Service};
pub use tokio_util::sync::CancellationToken;
