//! Web chat: the hub's own channel. Customers hold a WebSocket to the hub, and sending them a
//! message means handing it to their open sockets on this node. A customer who is away finds the
//! message in the conversation's history on the next connection, so a send never fails for want
//! of a socket; the conversation's journal, not the socket, is what keeps it.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_actors::domain::OutboundContent;
use switchboard_actors::ports::{Outbound, OutboundMessage, SendError};
use tokio::sync::mpsc;

/// Frames a customer's socket may be handed before it counts as stuck and is dropped (the
/// customer reconnects and reads the history).
pub const SOCKET_BACKLOG: usize = 256;

/// What the hub pushes to a customer's socket.
#[derive(Clone, Debug, PartialEq)]
pub enum WidgetPush {
    /// A message from the business.
    Message {
        /// Its id (`web-…`), also the provider id in the journal.
        id: String,
        /// What it says.
        content: OutboundContent,
    },
    /// An agent started or stopped typing.
    Typing {
        /// Typing or not.
        on: bool,
    },
}

/// One open customer socket.
struct Socket {
    id: u64,
    tx: mpsc::Sender<WidgetPush>,
}

/// The open customer sockets of one web-chat channel, by visitor id.
#[derive(Default)]
pub struct WebChatDesk {
    sockets: Mutex<HashMap<String, Vec<Socket>>>,
    next_id: AtomicU64,
}

/// A registered socket; dropping it unregisters.
pub struct SocketGuard {
    desk: Arc<WebChatDesk>,
    visitor: String,
    id: u64,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.desk.remove(&self.visitor, self.id);
    }
}

impl WebChatDesk {
    /// Registers a socket of `visitor`; it receives pushes until the guard is dropped.
    pub fn connect(self: &Arc<Self>, visitor: &str) -> (SocketGuard, mpsc::Receiver<WidgetPush>) {
        let (tx, rx) = mpsc::channel(SOCKET_BACKLOG);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(visitor.to_owned()).or_default().push(Socket { id, tx });
        (SocketGuard { desk: self.clone(), visitor: visitor.to_owned(), id }, rx)
    }

    /// Hands `push` to every open socket of `visitor`; returns how many took it. A socket whose
    /// backlog is full is dropped rather than allowed to grow.
    pub fn push(&self, visitor: &str, push: &WidgetPush) -> usize {
        let mut sockets = self.lock();
        let Some(list) = sockets.get_mut(visitor) else { return 0 };
        list.retain(|s| s.tx.try_send(push.clone()).is_ok());
        let delivered = list.len();
        if list.is_empty() {
            sockets.remove(visitor);
        }
        delivered
    }

    /// Open sockets across all visitors.
    pub fn open_sockets(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn remove(&self, visitor: &str, id: u64) {
        let mut sockets = self.lock();
        if let Some(list) = sockets.get_mut(visitor) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                sockets.remove(visitor);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Socket>>> {
        // A panic while holding this lock leaves a plain map behind; keep using it.
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The web-chat channel's send API for the outbox.
pub struct WebChatOutbound {
    desk: Arc<WebChatDesk>,
}

impl WebChatOutbound {
    /// Sends through `desk`.
    pub fn new(desk: Arc<WebChatDesk>) -> Self {
        Self { desk }
    }
}

#[async_trait]
impl Outbound for WebChatOutbound {
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        let id = format!("web-{}", uuid::Uuid::now_v7());
        self.desk.push(&msg.to.recipient, &WidgetPush::Message { id: id.clone(), content: msg.content.clone() });
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_actors::domain::{ChannelKind, ChannelRef, ReplyAddress, TenantId};

    fn message(to: &str, body: &str) -> OutboundMessage {
        OutboundMessage {
            tenant: TenantId::new("t"),
            to: ReplyAddress { channel: ChannelRef::new(ChannelKind::WebChat, "site"), recipient: to.into() },
            content: OutboundContent::Text { body: body.into() },
            key: "c/1".into(),
            callback_query_id: None,
        }
    }

    #[tokio::test]
    async fn a_send_reaches_every_open_socket_of_its_visitor_only() {
        let desk = Arc::new(WebChatDesk::default());
        let outbound = WebChatOutbound::new(desk.clone());
        let (_tab1, mut rx1) = desk.connect("visitor-a");
        let (_tab2, mut rx2) = desk.connect("visitor-a");
        let (_other, mut other) = desk.connect("visitor-b");

        let id = outbound.send(&message("visitor-a", "Olá!")).await.unwrap();
        assert!(id.starts_with("web-"));
        for rx in [&mut rx1, &mut rx2] {
            let WidgetPush::Message { id: got, content } = rx.try_recv().unwrap() else { panic!("a message") };
            assert_eq!((got.as_str(), content.body()), (id.as_str(), "Olá!"));
        }
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_send_to_an_absent_visitor_succeeds_and_closed_sockets_unregister() {
        let desk = Arc::new(WebChatDesk::default());
        let outbound = WebChatOutbound::new(desk.clone());
        assert!(outbound.send(&message("away", "oi")).await.is_ok(), "kept in history for the next visit");
        {
            let (_guard, _rx) = desk.connect("away");
            assert_eq!(desk.open_sockets(), 1);
        }
        assert_eq!(desk.open_sockets(), 0);
    }

    #[test]
    fn a_stuck_socket_is_dropped_instead_of_growing() {
        let desk = Arc::new(WebChatDesk::default());
        let (_guard, _rx) = desk.connect("slow");
        for _ in 0..SOCKET_BACKLOG {
            assert_eq!(desk.push("slow", &WidgetPush::Typing { on: true }), 1);
        }
        assert_eq!(desk.push("slow", &WidgetPush::Typing { on: true }), 0);
        assert_eq!(desk.open_sockets(), 0);
    }
}
