//! What REST requests carry: JSON bodies and query strings, each a closed shape (unknown fields
//! are refused) checked before anything runs, so bad input gets a 400 and changes nothing.

use super::error::RestError;
use crate::routes::body::{read_body, require_utf8};
use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use switchboard_adapters::tools::args::StatusName;

/// Largest page of conversations, messages or events.
pub const MAX_PAGE: u32 = 200;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;
/// Messages shown with a conversation when none is asked for.
pub const DEFAULT_MESSAGES: u32 = 20;
/// Most messages shown with a conversation (more: page `/messages`).
pub const MAX_MESSAGES: u32 = 100;

/// Reads a JSON object into `T`. An empty body reads as `{}`, so commands whose fields are all
/// optional (close, reopen) may be sent without one.
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, RestError> {
    let body = read_body(req, payload, limit).await?;
    require_utf8(&body)?;
    let body = match body.trim_ascii() {
        b"" => b"{}",
        // serde would also read a struct from an array (`["hi"]`): only objects are bodies here.
        object @ [b'{', ..] => object,
        _ => return Err(RestError::bad_request("invalid JSON body: expected an object")),
    };
    serde_json::from_slice(body).map_err(|e| RestError::bad_request(format!("invalid JSON body: {e}")))
}

/// A page size between 1 and [`MAX_PAGE`].
pub fn page_size(limit: Option<u32>, default: u32, max: u32) -> Result<usize, RestError> {
    match limit.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n as usize),
        n => Err(RestError::bad_request(format!("limit must be between 1 and {max}, got {n}"))),
    }
}

/// `GET /conversations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<StatusName>,
    /// Only waiting in or assigned through this queue.
    pub queue: Option<String>,
    /// Only assigned to this agent.
    pub agent: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Matches to skip, newest first.
    pub offset: Option<u32>,
}

/// `GET /conversations/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationQuery {
    /// How many recent messages to include.
    pub messages: Option<u32>,
}

/// `GET /conversations/{id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Only messages older than this journal sequence (the previous page's `next_before_seq`).
    pub before_seq: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
}

/// `GET /conversations/{id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// First journal sequence to return (default: the oldest kept).
    pub from: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
}

/// `GET /conversations/{id}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// The journal sequence to rebuild the state at.
    pub at_seq: u64,
}

/// `POST …/reply` and `POST …/notes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    /// The text.
    pub text: String,
}

/// `POST …/transfer`: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// To the waiting list of this queue.
    pub queue: Option<String>,
    /// Straight to this agent (online in the conversation's queue, with room).
    pub agent: Option<String>,
}

/// `POST …/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The agent.
    pub agent: String,
}

/// `POST …/reopen`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReopenBody {
    /// Queue to wait in (the tenant's default queue if absent).
    pub queue: Option<String>,
}

/// `POST …/close`: no fields; a body, if any, must be `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}
