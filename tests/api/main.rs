//! App-level tests: the real HTTP server on port 0, the real wiring, and local fakes of the
//! WhatsApp Graph API, the Telegram Bot API and an OpenAI-compatible API. One test binary.

mod helpers;
mod subprocess;
mod ws_client;

mod bad_input;
mod browser;
mod chat_commands;
mod cluster;
mod config_files;
mod console_ws;
mod dlq;
mod lifecycle;
mod mcp_http;
mod mcp_interop;
mod metrics;
mod ordering;
mod overload;
mod redis_aof;
mod redis_backend;
mod rest;
mod rest_openapi;
mod shutdown;
mod telegram;
mod tools;
mod webchat;
mod whatsapp;
