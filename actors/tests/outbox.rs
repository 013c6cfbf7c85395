//! Outbox: retries on throttling and transient errors, gives up on permanent ones, keeps each
//! conversation's messages in order while other conversations go in parallel.

mod support;

use actix::prelude::*;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{SinkProbe, channel, settle};
use switchboard_actors::domain::{ConversationId, OutboundContent, ReplyAddress, TenantId};
use switchboard_actors::event::{Input, SendOutcome};
use switchboard_actors::metrics::HubMetrics;
use switchboard_actors::outbox::{ChannelLimits, Outbox, OutboxPolicy, SendOutbound};
use switchboard_actors::ports::{ManualClock, Outbound, OutboundMessage, SendError};
use tokio::time::Instant;

/// Answers from a script per recipient; records (recipient, text, when).
#[derive(Default)]
struct ScriptedProvider {
    script: Mutex<VecDeque<Result<(), SendError>>>,
    slow_for: Mutex<Option<(String, Duration)>>,
    log: Mutex<Vec<(String, String, Instant)>>,
}

#[async_trait]
impl Outbound for ScriptedProvider {
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        let slow = self.slow_for.lock().unwrap().clone();
        if let Some((who, d)) = slow
            && who == msg.to.recipient
        {
            tokio::time::sleep(d).await;
        }
        let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
        self.log.lock().unwrap().push((msg.to.recipient.clone(), msg.content.body().to_owned(), Instant::now()));
        next.map(|()| format!("id-{}", msg.content.body()))
    }
}

fn send(to: &str, local_id: u64, text: &str) -> SendOutbound {
    SendOutbound {
        conversation: ConversationId::new(to),
        local_id,
        trace_id: "t".into(),
        message: OutboundMessage {
            tenant: TenantId::new("t"),
            to: ReplyAddress { channel: channel(), recipient: to.into() },
            content: OutboundContent::Text { body: text.into() },
            key: format!("{to}/{local_id}"),
            callback_query_id: None,
        },
        answers_since: None,
    }
}

fn outcomes(sink: &SinkProbe) -> Vec<(String, u64, SendOutcome)> {
    sink.0
        .lock()
        .unwrap()
        .iter()
        .map(|e| match &e.body {
            Input::OutboundResult { local_id, outcome } => (e.conversation_id.to_string(), *local_id, outcome.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn start(provider: Arc<ScriptedProvider>, policy: OutboxPolicy) -> (Addr<Outbox>, Arc<SinkProbe>, Arc<HubMetrics>) {
    let sink = Arc::new(SinkProbe::default());
    let metrics = Arc::new(HubMetrics::default());
    let limits = ChannelLimits::new(&policy);
    let outbox =
        Outbox::new(limits, provider, policy, sink.clone(), Arc::new(ManualClock::at(0)), metrics.clone()).start();
    (outbox, sink, metrics)
}

#[actix::test]
async fn throttling_waits_as_told_and_transient_errors_back_off() {
    tokio::time::pause();
    let provider = Arc::new(ScriptedProvider::default());
    provider.script.lock().unwrap().extend([
        Err(SendError::RateLimited { retry_after: Duration::from_secs(3) }),
        Err(SendError::Transient("502".into())),
        Ok(()),
    ]);
    let (outbox, sink, metrics) = start(provider.clone(), OutboxPolicy::default());
    let t0 = Instant::now();
    outbox.send(send("a", 1, "olá")).await.unwrap();
    settle(Duration::from_secs(10)).await;
    let log = provider.log.lock().unwrap().clone();
    assert_eq!(log.len(), 3);
    assert!(log[1].2 - t0 >= Duration::from_secs(3), "waited retry_after");
    assert!(log[2].2 - log[1].2 >= Duration::from_millis(200), "backoff after a transient error");
    assert_eq!(outcomes(&sink), vec![("a".into(), 1, SendOutcome::Sent { provider_message_id: "id-olá".into() })]);
    assert_eq!(metrics.outbound_retries.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[actix::test]
async fn permanent_errors_and_exhausted_retries_become_failures() {
    tokio::time::pause();
    let provider = Arc::new(ScriptedProvider::default());
    provider.script.lock().unwrap().push_back(Err(SendError::Permanent("(#131026) undeliverable".into())));
    provider.script.lock().unwrap().extend((0..3).map(|_| Err(SendError::Transient("down".into()))));
    let policy = OutboxPolicy { max_attempts: 3, ..OutboxPolicy::default() };
    let (outbox, sink, _) = start(provider.clone(), policy);
    outbox.send(send("a", 1, "x")).await.unwrap();
    settle(Duration::from_millis(10)).await;
    outbox.send(send("b", 1, "y")).await.unwrap();
    settle(Duration::from_secs(10)).await;
    let results = outcomes(&sink);
    assert_eq!(results[0], ("a".into(), 1, SendOutcome::Failed { reason: "(#131026) undeliverable".into() }));
    assert_eq!(results[1], ("b".into(), 1, SendOutcome::Failed { reason: "gave up after 3 attempts".into() }));
}

#[actix::test]
async fn one_conversation_stays_in_order_while_others_pass() {
    tokio::time::pause();
    let provider = Arc::new(ScriptedProvider::default());
    *provider.slow_for.lock().unwrap() = Some(("slow".into(), Duration::from_secs(2)));
    let (outbox, _sink, _) = start(provider.clone(), OutboxPolicy::default());
    for i in 1..=3 {
        outbox.send(send("slow", i, &format!("s{i}"))).await.unwrap();
    }
    outbox.send(send("fast", 1, "f1")).await.unwrap();
    settle(Duration::from_secs(10)).await;
    let log: Vec<String> = provider.log.lock().unwrap().iter().map(|(_, t, _)| t.clone()).collect();
    assert_eq!(log, vec!["f1", "s1", "s2", "s3"], "fast conversation not stuck behind the slow one; slow one in order");
}

#[actix::test]
async fn per_chat_rate_limit_spaces_messages_to_one_chat() {
    let provider = Arc::new(ScriptedProvider::default());
    let policy = OutboxPolicy { per_chat_per_second: Some(1), per_second: 1000, ..OutboxPolicy::default() };
    let (outbox, sink, _) = start(provider.clone(), policy);
    outbox.send(send("chat", 1, "1")).await.unwrap();
    outbox.send(send("chat", 2, "2")).await.unwrap();
    outbox.send(send("other", 1, "o")).await.unwrap();
    // governor measures real time: wait for real.
    for _ in 0..300 {
        if sink.0.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = provider.log.lock().unwrap().clone();
    assert_eq!(log.len(), 3);
    let chat: Vec<_> = log.iter().filter(|(to, _, _)| to == "chat").map(|(_, _, at)| *at).collect();
    assert!(chat[1] - chat[0] >= Duration::from_millis(900), "1 msg/s per chat: {:?}", chat[1] - chat[0]);
    let other = log.iter().find(|(to, _, _)| to == "other").unwrap().2;
    assert!(other < chat[1], "another chat is not held back by the per-chat limit");
}

#[actix::test]
async fn a_refused_trial_send_does_not_jam_the_breaker() {
    tokio::time::pause();
    let provider = Arc::new(ScriptedProvider::default());
    provider.script.lock().unwrap().extend([
        Err(SendError::Transient("down".into())),
        Err(SendError::Permanent("(#131026) undeliverable".into())),
        Ok(()),
    ]);
    let policy = OutboxPolicy {
        breaker_failures: 1,
        breaker_cooldown: Duration::from_secs(5),
        max_attempts: 10,
        ..OutboxPolicy::default()
    };
    let (outbox, sink, _) = start(provider.clone(), policy);
    outbox.send(send("a", 1, "x")).await.unwrap(); // opens the breaker, then its trial is refused for good
    settle(Duration::from_secs(30)).await;
    outbox.send(send("b", 1, "y")).await.unwrap();
    settle(Duration::from_secs(30)).await;
    let results = outcomes(&sink);
    assert_eq!(results[0].2, SendOutcome::Failed { reason: "(#131026) undeliverable".into() });
    assert_eq!(
        results[1],
        ("b".into(), 1, SendOutcome::Sent { provider_message_id: "id-y".into() }),
        "the channel still sends"
    );
}

#[actix::test]
async fn an_outage_shorter_than_the_retries_delays_replies_instead_of_failing_them() {
    tokio::time::pause();
    let provider = Arc::new(ScriptedProvider::default());
    provider.script.lock().unwrap().extend((0..3).map(|_| Err(SendError::Transient("502".into()))));
    let policy = OutboxPolicy {
        breaker_failures: 2,
        breaker_cooldown: Duration::from_secs(20),
        max_attempts: 4,
        ..OutboxPolicy::default()
    };
    let (outbox, sink, _) = start(provider.clone(), policy);
    outbox.send(send("a", 1, "x")).await.unwrap();
    settle(Duration::from_secs(120)).await;
    assert_eq!(outcomes(&sink), vec![("a".into(), 1, SendOutcome::Sent { provider_message_id: "id-x".into() })]);
}

#[actix::test]
async fn a_send_asked_for_again_after_it_went_out_is_reported_again_not_sent_twice() {
    tokio::time::pause();
    let provider = Arc::new(ScriptedProvider::default());
    let (outbox, sink, _) = start(provider.clone(), OutboxPolicy::default());
    outbox.send(send("a", 1, "olá")).await.unwrap();
    settle(Duration::from_secs(1)).await;
    // The conversation was rehydrated from a journal without the result and asks again.
    outbox.send(send("a", 1, "olá")).await.unwrap();
    outbox.send(send("a", 2, "tudo bem?")).await.unwrap();
    settle(Duration::from_secs(1)).await;
    let sent: Vec<String> = provider.log.lock().unwrap().iter().map(|(_, text, _)| text.clone()).collect();
    assert_eq!(sent, ["olá", "tudo bem?"], "the customer gets each message once");
    let first = SendOutcome::Sent { provider_message_id: "id-olá".into() };
    let second = SendOutcome::Sent { provider_message_id: "id-tudo bem?".into() };
    assert_eq!(
        outcomes(&sink),
        vec![("a".into(), 1, first.clone()), ("a".into(), 1, first), ("a".into(), 2, second)],
        "the repeated request hears the first send's result"
    );
}
