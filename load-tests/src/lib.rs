//! Test support for Switchboard: in-process fakes of the external APIs the hub calls, and
//! builders for the webhook bodies it receives. Used by integration tests (under
//! `#[actix_web::test]`) and by the load generator (under `#[tokio::main]`).
//!
//! Modules:
//! * [`fakes`] — `FakeGraph` (WhatsApp Cloud API), `FakeTelegram` (Bot API), `FakeOpenAi`
//!   (chat completions), and the shared request `Recorder`.
//! * [`payloads`] — inbound WhatsApp/Telegram webhook bodies and the WhatsApp `wa_sign`.
//! * [`loadgen`] — the load generator behind the `loadgen` binary.
//! * [`cluster`] — several hub processes on one Redis (or a Redis Cluster), for multi-node tests.
//! * [`redis_server`], [`redis_cluster`] — throwaway `redis-server`s and a 3-master Redis Cluster.

pub mod cluster;
pub mod fakes;
pub mod loadgen;
pub mod payloads;
pub mod redis_cluster;
pub mod redis_server;
