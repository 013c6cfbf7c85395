//! A WebSocket client for the console and web-chat tests: JSON frames in and out, every wait
//! bounded so a missing frame fails the test instead of hanging it.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long a test waits for one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(5);

pub struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

/// Opens `ws://…{path_and_query}` on the test hub (`http_url` is the hub's `http://` URL).
pub async fn open(http_url: &str, path_and_query: &str) -> Result<Ws, tungstenite::Error> {
    let url = format!("{}{path_and_query}", http_url.replacen("http://", "ws://", 1));
    connect_async(url).await.map(|(stream, _)| Ws(stream))
}

/// The HTTP status a refused upgrade answered with.
pub async fn refused_status(http_url: &str, path_and_query: &str) -> u16 {
    match open(http_url, path_and_query).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected the upgrade to be refused"),
    }
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.0.send(Message::Text(frame.to_string().into())).await.expect("frame sent");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.0.send(Message::Text(text.to_owned().into())).await.expect("frame sent");
    }

    /// The next JSON frame (pings are answered by the library on the way).
    pub async fn next(&mut self) -> Value {
        self.try_next(FRAME_WAIT).await.expect("a frame in time")
    }

    /// The next JSON frame within `wait`, or `None`.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.0.next()).await.ok()?;
            match msg.expect("connection open").expect("a valid frame") {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).expect("JSON frame")),
                Message::Close(_) => panic!("the server closed the connection"),
                _ => continue,
            }
        }
    }

    /// Reads frames until one satisfies `wanted`; returns it and the frames skipped.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.try_next(FRAME_WAIT).await.unwrap_or_else(|| panic!("no {what}; got {skipped:#?}"));
            if wanted(&frame) {
                return (frame, skipped);
            }
            skipped.push(frame);
        }
    }

    /// Sends a command with `ref` and returns its answer (`ack` or `error`) and the pushes
    /// received before it.
    pub async fn command(&mut self, reference: &str, mut frame: Value) -> (Value, Vec<Value>) {
        frame["ref"] = Value::from(reference);
        self.send(frame).await;
        self.until("answer", |f| f["ref"] == reference && (f["type"] == "ack" || f["type"] == "error")).await
    }

    /// Every frame received until the server answers a ping: what it pushed before then.
    pub async fn drain(&mut self) -> Vec<Value> {
        let marker = format!("drain-{}", uuid::Uuid::new_v4());
        self.send(serde_json::json!({ "type": "ping", "ref": marker })).await;
        self.until("pong", |f| f["type"] == "pong" && f["ref"] == marker.as_str()).await.1
    }

    /// Whether the server ends the connection within [`FRAME_WAIT`] (frames before that are
    /// skipped).
    pub async fn ends(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.0.close(None).await;
    }
}
