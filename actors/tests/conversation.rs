//! ConversationActor with probes in place of its neighbours and time under the test's control.

mod support;

use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use switchboard_actors::agents::ai::Generate;
use switchboard_actors::agents::queue::Enqueued;
use switchboard_actors::conversation::{CommandError, Outcome};
use switchboard_actors::dispatcher::{DispatchError, Handoff, RequestHandoff};
use switchboard_actors::domain::{AgentId, Author};
use switchboard_actors::event::{Input, SendOutcome};
use switchboard_actors::ports::LlmAction;
use switchboard_actors::registry::{DrainAll, LiveCount};
use switchboard_actors::state::Status;
use switchboard_actors::tenant::{Route, TenantPolicy};

fn ai_policy() -> TenantPolicy {
    TenantPolicy::example("t", Route::Ai)
}

#[actix::test]
async fn debounce_window_groups_a_burst_into_one_turn() {
    tokio::time::pause();
    let mut policy = ai_policy();
    policy.ai.debounce = Some(Duration::from_millis(500));
    let rig = rig(policy, Duration::from_millis(10));
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(100)).await;
    rig.customer("m2", "tudo bem?").await.unwrap();
    settle(Duration::from_millis(100)).await;
    rig.customer("m3", "preciso de ajuda").await.unwrap();
    assert!(rig.llm.calls().is_empty(), "still inside the window");
    settle(Duration::from_millis(500)).await;
    assert_eq!(rig.llm.calls().len(), 1, "one model call for the burst");
    assert_eq!(rig.sent_texts(), vec!["echo: oi\ntudo bem?\npreciso de ajuda"]);
}

#[actix::test]
async fn without_debounce_messages_during_a_turn_wait_for_the_next_one() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_secs(1));
    rig.customer("m1", "a").await.unwrap();
    rig.customer("m2", "b").await.unwrap();
    rig.customer("m3", "c").await.unwrap();
    settle(Duration::from_secs(3)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: a", "echo: b\nc"]);
    assert_eq!(
        rig.state().ai_answered_seq,
        rig.state().history.iter().rev().find(|e| e.author == Author::Customer).unwrap().seq
    );
}

#[actix::test]
async fn close_while_the_model_thinks_drops_its_reply() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_secs(2));
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(500)).await;
    assert_eq!(rig.llm.calls().len(), 1);
    assert_eq!(rig.deliver(Input::Close { by: Author::Agent(AgentId::new("ana")) }).await, Ok(Outcome::Applied));
    settle(Duration::from_secs(3)).await;
    assert!(rig.sent_texts().is_empty(), "no reply after the close: {:?}", rig.sent_texts());
    assert_eq!(rig.metrics.stale_ai_replies_dropped.load(Ordering::Relaxed), 1);
    assert_eq!(rig.state().status, Status::Closed);
}

#[actix::test]
async fn ai_handoff_tool_call_queues_and_the_queue_assigns() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_millis(10));
    *rig.llm.action.lock().unwrap() =
        Some(LlmAction::Handoff { queue: Some("sales".into()), reason: "wants a quote".into(), message: None });
    rig.customer("m1", "quero um orçamento").await.unwrap();
    settle(Duration::from_millis(100)).await;
    assert_eq!(rig.state().status, Status::Queued { queue: "sales".into() });
    assert_eq!(rig.sent_texts(), vec!["Vou te transferir para um atendente.", "Você está na fila sales, posição 1."]);
    // The queue has no agent yet; an assignment arrives as a bus input.
    let assign = Input::Assign { queue: "sales".into(), agent: AgentId::new("ana") };
    assert_eq!(rig.deliver(assign.clone()).await, Ok(Outcome::Applied));
    assert_eq!(rig.deliver(assign).await, Ok(Outcome::Duplicate), "a redelivered assignment is harmless");
    assert_eq!(rig.state().status, Status::Assigned { queue: "sales".into(), agent: AgentId::new("ana") });
    let epochs = rig.state().epoch;
    assert!(epochs >= 3, "ai start, handoff and assignment each moved ownership: {epochs}");
}

#[actix::test]
async fn assignment_of_a_closed_conversation_is_refused() {
    tokio::time::pause();
    let rig = rig(TenantPolicy::example("t", Route::Queue("sales".into())), Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    rig.deliver(Input::Close { by: Author::System }).await.unwrap();
    let late = rig.deliver(Input::Assign { queue: "sales".into(), agent: AgentId::new("ana") }).await;
    assert!(matches!(late, Err(CommandError::Conflict(_))), "{late:?}");
    assert_eq!(rig.state().status, Status::Closed);
}

#[actix::test]
async fn idle_actor_passivates_and_rehydrates_from_the_store() {
    tokio::time::pause();
    let mut policy = ai_policy();
    policy.idle_timeout = Duration::from_secs(10);
    let rig = rig(policy, Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.registry.send(LiveCount).await.unwrap(), 1);
    settle(Duration::from_secs(20)).await;
    assert_eq!(rig.registry.send(LiveCount).await.unwrap(), 1, "a reply the outbox has not reported on keeps it live");
    rig.report_sent().await;
    settle(Duration::from_secs(20)).await;
    assert_eq!(rig.registry.send(LiveCount).await.unwrap(), 0);
    assert_eq!(rig.metrics.passivations.load(Ordering::Relaxed), 1);
    // A redelivery of the first message after rehydration is still recognised.
    assert_eq!(rig.customer("m1", "oi").await, Ok(Outcome::Duplicate));
    assert_eq!(rig.metrics.rehydrations.load(Ordering::Relaxed), 1);
    rig.customer("m2", "de novo").await.unwrap();
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: oi", "echo: de novo"]);
}

#[actix::test]
async fn triage_flow_counts_invalid_answers_and_routes_choices() {
    tokio::time::pause();
    let rig = rig(TenantPolicy::example("t", Route::Triage), Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    assert!(matches!(rig.state().status, Status::Triage { invalid_attempts: 0 }));
    rig.customer("m2", "7").await.unwrap();
    assert!(matches!(rig.state().status, Status::Triage { invalid_attempts: 1 }));
    rig.customer("m3", "3").await.unwrap();
    assert_eq!(rig.state().status, Status::Bot);
    settle(Duration::from_millis(50)).await;
    let texts = rig.sent_texts();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[0].contains("1. Vendas") && texts[1].starts_with("Opção inválida."));
    assert_eq!(texts[2], "Olá! Sou o assistente virtual. Como posso ajudar?");
    assert!(rig.llm.calls().is_empty(), "the menu choice itself is not sent to the model");
}

#[actix::test]
async fn transfer_back_into_the_same_queue_waits_there_again() {
    use switchboard_actors::agents::queue::GetQueueSnapshot;
    use switchboard_actors::event::TransferTarget;
    tokio::time::pause();
    let rig = rig(TenantPolicy::example("t", Route::Queue("sales".into())), Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    rig.deliver(Input::Assign { queue: "sales".into(), agent: AgentId::new("ana") }).await.unwrap();
    let back = rig.deliver(Input::Transfer { target: TransferTarget::Queue("sales".into()) }).await;
    assert_eq!(back, Ok(Outcome::Applied));
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.state().status, Status::Queued { queue: "sales".into() });
    let queue = rig.queue("sales").send(GetQueueSnapshot).await.unwrap();
    assert_eq!(queue.waiting.len(), 1, "the conversation is in the waiting list, not lost: {queue:?}");
}

#[actix::test]
async fn the_ai_does_not_close_over_a_message_it_has_not_seen() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_secs(1));
    *rig.llm.action.lock().unwrap() = Some(LlmAction::Close { message: Some("Até logo!".into()) });
    rig.customer("m1", "obrigado, era só isso").await.unwrap();
    settle(Duration::from_millis(500)).await;
    rig.customer("m2", "ah, mais uma coisa!").await.unwrap();
    settle(Duration::from_millis(700)).await;
    assert_eq!(rig.state().status, Status::Bot, "m2 arrived while the model decided to close");
    *rig.llm.action.lock().unwrap() = None;
    settle(Duration::from_secs(2)).await;
    assert_eq!(rig.sent_texts(), vec!["Até logo!", "echo: ah, mais uma coisa!"]);
}

#[actix::test]
async fn close_tool_closes_when_nothing_new_arrived() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_millis(10));
    *rig.llm.action.lock().unwrap() = Some(LlmAction::Close { message: None });
    rig.customer("m1", "tchau").await.unwrap();
    settle(Duration::from_millis(100)).await;
    assert_eq!(rig.state().status, Status::Closed);
}

/// Stands in for the dispatcher's handoff handler: records requests, puts everyone at position 7.
#[derive(Default)]
struct HandoffProbe(Arc<Mutex<Vec<RequestHandoff>>>);

impl Actor for HandoffProbe {
    type Context = Context<Self>;
}

impl Handler<RequestHandoff> for HandoffProbe {
    type Result = Result<Handoff, DispatchError>;

    fn handle(&mut self, msg: RequestHandoff, _: &mut Self::Context) -> Self::Result {
        let queue = msg.queue.clone().unwrap_or_else(|| "support".into());
        self.0.lock().unwrap().push(msg);
        Ok(Handoff { queue, enqueued: Enqueued { position: 7, open: true } })
    }
}

/// An AI agent that is gone: every request to it fails with a mailbox error.
struct GoneAgent;

impl Actor for GoneAgent {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Generate> for GoneAgent {
    type Result = MessageResult<Generate>;
    fn handle(&mut self, _: Generate, _: &mut Self::Context) -> Self::Result {
        unreachable!("stopped before any message")
    }
}

#[actix::test]
async fn an_unreachable_ai_agent_means_fallback_and_handoff_with_the_trace_id() {
    tokio::time::pause();
    let handoffs = HandoffProbe::default();
    let recorded = handoffs.0.clone();
    let probes = Probes { ai: Some(GoneAgent.start().recipient()), handoff: Some(handoffs.start().recipient()) };
    settle(Duration::from_millis(10)).await;
    let rig = rig_with(ai_policy(), Duration::ZERO, probes);
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(100)).await;
    let requests = recorded.lock().unwrap();
    assert_eq!(requests.len(), 1, "handed off, not silent");
    assert_eq!(requests[0].queue.as_deref(), Some("support"), "the default queue");
    assert_eq!(requests[0].trace_id, "trace-1", "the customer's trace id rides the handoff");
    assert_eq!(rig.state().status, Status::Queued { queue: "support".into() });
    let texts = rig.sent_texts();
    assert_eq!(texts[0], rig.policy.ai.fallback_message);
    assert_eq!(texts[1], "Você está na fila support, posição 7.");
}

#[actix::test]
async fn transfer_to_an_agent_needs_one_online_with_room() {
    use switchboard_actors::agents::queue::{GetQueueSnapshot, SetPresence};
    use switchboard_actors::event::TransferTarget;
    tokio::time::pause();
    let rig = rig(TenantPolicy::example("t", Route::Queue("sales".into())), Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    rig.deliver(Input::Assign { queue: "sales".into(), agent: AgentId::new("ana") }).await.unwrap();
    let to = |a: &str| Input::Transfer { target: TransferTarget::Agent(AgentId::new(a)) };
    let offline = rig.deliver(to("bia")).await;
    assert!(matches!(offline, Err(CommandError::Conflict(_))), "{offline:?}");
    assert_eq!(rig.state().status, Status::Assigned { queue: "sales".into(), agent: AgentId::new("ana") }, "unchanged");
    rig.queue("sales").send(SetPresence { agent: AgentId::new("bia"), online: true, capacity: 1 }).await.unwrap();
    assert_eq!(rig.deliver(to("bia")).await, Ok(Outcome::Applied));
    assert_eq!(rig.state().status, Status::Assigned { queue: "sales".into(), agent: AgentId::new("bia") });
    let agents = rig.queue("sales").send(GetQueueSnapshot).await.unwrap().agents;
    assert!(agents.iter().any(|(a, _, _, active)| a.as_str() == "bia" && *active == 1), "{agents:?}");
}

#[actix::test]
async fn handing_back_to_the_ai_lets_it_answer_only_what_comes_next() {
    tokio::time::pause();
    let rig = rig(TenantPolicy::example("t", Route::Queue("sales".into())), Duration::from_millis(10));
    rig.customer("m1", "quero falar com alguém").await.unwrap();
    assert_eq!(rig.state().status, Status::Queued { queue: "sales".into() });
    let epoch = rig.state().epoch;
    assert_eq!(rig.deliver(Input::HandToAi).await, Ok(Outcome::Applied));
    assert_eq!(rig.deliver(Input::HandToAi).await, Ok(Outcome::Duplicate), "a repeat changes nothing");
    assert_eq!(rig.state().status, Status::Bot);
    assert!(rig.state().epoch > epoch, "ownership moved");
    settle(Duration::from_millis(100)).await;
    assert!(rig.llm.calls().is_empty(), "what the customer said to the queue is not the AI's to answer");
    rig.customer("m2", "ainda aí?").await.unwrap();
    settle(Duration::from_millis(100)).await;
    assert_eq!(rig.sent_texts().last().map(String::as_str), Some("echo: ainda aí?"));
}

#[actix::test]
async fn notes_stay_internal_and_a_closed_conversation_reopens_with_a_new_ticket() {
    tokio::time::pause();
    let rig = rig(TenantPolicy::example("t", Route::Queue("sales".into())), Duration::ZERO);
    let by = Author::Integration("bot:crm".into());
    assert!(matches!(rig.deliver(Input::Reopen { queue: None }).await, Err(CommandError::Invalid(_))));
    rig.customer("m1", "oi").await.unwrap();
    let sent_before = rig.sent_texts();
    let note = Input::Note { author: by.clone(), body: "cliente VIP".into() };
    assert_eq!(rig.deliver(note).await, Ok(Outcome::Applied));
    assert_eq!(rig.state().notes.back().map(|n| n.text.as_str()), Some("cliente VIP"));
    assert!(rig.state().history.iter().all(|e| &*e.text != "cliente VIP"), "not in the context window");
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.sent_texts(), sent_before, "nothing sent to the customer");

    rig.deliver(Input::Close { by: by.clone() }).await.unwrap();
    let late = rig.deliver(Input::Send { author: by.clone(), body: "ainda aí?".into() }).await;
    assert_eq!(late, Err(CommandError::Closed));
    let unknown = rig.deliver(Input::Reopen { queue: Some("nope".into()) }).await;
    assert_eq!(unknown, Err(CommandError::UnknownQueue("nope".into())));
    assert_eq!(rig.deliver(Input::Reopen { queue: None }).await, Ok(Outcome::Applied));
    let state = rig.state();
    assert_eq!((state.ticket, state.status.clone()), (2, Status::Queued { queue: "support".into() }));
    assert!(matches!(rig.deliver(Input::Reopen { queue: None }).await, Err(CommandError::Conflict(_))));
    assert_eq!(rig.deliver(Input::Send { author: by, body: "voltamos".into() }).await, Ok(Outcome::Applied));
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.sent_texts().last().map(String::as_str), Some("voltamos"));
}

/// Stops the conversation as a handover does, giving model turns `deadline` to finish.
async fn hand_over(rig: &Rig, deadline: Duration) {
    let drained = rig.registry.send(DrainAll { deadline }).await.unwrap();
    assert_eq!(drained, 1);
    settle(Duration::from_millis(10)).await;
    assert_eq!(rig.registry.send(LiveCount).await.unwrap(), 0);
}

#[actix::test]
async fn a_handover_lets_the_model_turn_in_flight_finish_and_persist_its_reply() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_secs(2));
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(100)).await;
    assert!(rig.sent_texts().is_empty(), "the model is still thinking");
    hand_over(&rig, Duration::from_secs(5)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: oi"], "the turn finished before the stop");
    assert_eq!(rig.state().unanswered().count(), 0);
}

#[actix::test]
async fn a_turn_cut_by_the_handover_deadline_leaves_the_conversation_owing_it() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::from_secs(3));
    rig.customer("m1", "oi").await.unwrap();
    hand_over(&rig, Duration::from_secs(1)).await;
    settle(Duration::from_secs(5)).await;
    assert!(rig.sent_texts().is_empty(), "a stopped conversation sends nothing");
    assert!(rig.state().owes_work(), "the store marks it for the next owner");
    // The next owner wakes it: the model runs again and answers.
    rig.deliver(Input::Resume { epoch: 0 }).await.unwrap();
    settle(Duration::from_secs(4)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: oi"]);
}

#[actix::test]
async fn inherited_unsent_replies_go_out_again_on_resume_before_newer_ones() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(50)).await;
    // The node stops before the outbox reports "echo: oi"; the reply stays owed.
    hand_over(&rig, Duration::from_secs(5)).await;
    assert!(rig.state().owes_work());
    rig.sent.lock().unwrap().clear();
    // Rehydrated elsewhere: the customer's next message is answered, but held back...
    rig.customer("m2", "de novo").await.unwrap();
    settle(Duration::from_millis(50)).await;
    assert!(rig.sent_texts().is_empty(), "nothing overtakes the inherited reply");
    // ...until the wake-up: the old reply first, then the new one.
    rig.deliver(Input::Resume { epoch: 0 }).await.unwrap();
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: oi", "echo: de novo"]);
}

#[actix::test]
async fn an_inherited_reply_whose_result_arrives_is_not_sent_again() {
    tokio::time::pause();
    let rig = rig(ai_policy(), Duration::ZERO);
    rig.customer("m1", "oi").await.unwrap();
    settle(Duration::from_millis(50)).await;
    hand_over(&rig, Duration::from_secs(5)).await;
    let first = rig.sent.lock().unwrap().drain(..).map(|m| m.local_id).collect::<Vec<_>>();
    rig.customer("m2", "de novo").await.unwrap();
    settle(Duration::from_millis(50)).await;
    // The previous owner's outbox reports the send (its result was on the bus before the wake-up).
    for local_id in first {
        let outcome = SendOutcome::Sent { provider_message_id: format!("wamid.{local_id}") };
        rig.deliver(Input::OutboundResult { local_id, outcome }).await.unwrap();
    }
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: de novo"], "held sends go out, the reported one is not repeated");
    rig.deliver(Input::Resume { epoch: 0 }).await.unwrap();
    settle(Duration::from_millis(50)).await;
    assert_eq!(rig.sent_texts(), vec!["echo: de novo"]);
}
