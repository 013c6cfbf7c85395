//! What each tool does, in terms of the hub: reads come from the store and the queue actors,
//! changes go to the conversation through the bus.

use super::render::{detail, line, summary, transcript};
use super::{Call, Caller, ToolError, ToolOutcome, Tools, args::*};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchboard_actors::conversation::CommandError;
use switchboard_actors::domain::{AgentId, ConversationId};
use switchboard_actors::event::{Input, TransferTarget};
use switchboard_actors::query::{ConversationQuery, MAX_PAGE};
use switchboard_actors::state::ConversationState;

/// A tool that could not do its job: a refusal the caller sees (`isError`), or the backend
/// being down (a retryable protocol error, never stored as the answer to an idempotency key).
enum Fail {
    Refused(ToolOutcome),
    Unavailable(String),
}

fn refused(text: impl Into<String>) -> Fail {
    Fail::Refused(ToolOutcome::refused(text))
}

fn unavailable(e: CommandError) -> Fail {
    match e {
        CommandError::Unavailable(why) => Fail::Unavailable(why),
        other => refused(other.to_string()),
    }
}

fn page_size(limit: Option<u32>, default: usize, max: usize) -> usize {
    limit.map_or(default, |l| l as usize).clamp(1, max)
}

impl Tools {
    /// Runs a parsed call. `Err` only when the backend is unavailable.
    pub(super) async fn run(&self, caller: &Caller, call: Call, trace_id: &str) -> Result<ToolOutcome, ToolError> {
        match self.dispatch(caller, call, trace_id).await {
            Ok(outcome) | Err(Fail::Refused(outcome)) => Ok(outcome),
            Err(Fail::Unavailable(why)) => Err(ToolError::Unavailable(why)),
        }
    }

    async fn dispatch(&self, caller: &Caller, call: Call, trace: &str) -> Result<ToolOutcome, Fail> {
        let by = caller.author();
        match call {
            Call::List(a) => self.list(caller, a).await,
            Call::Get(a) => self.get(caller, a).await,
            Call::Send(a) => {
                let input = Input::Send { author: by, body: a.text };
                self.command(caller, &a.conversation_id, input, trace, "Message queued for delivery").await
            }
            Call::Transfer(a) => {
                // The conversation checks the queue: a missing or foreign conversation is "not
                // found" first, whatever the queue.
                let input = Input::Transfer { target: TransferTarget::Queue(a.queue) };
                self.command(caller, &a.conversation_id, input, trace, "Transferred").await
            }
            Call::Assign(a) => {
                let input = Input::Transfer { target: TransferTarget::Agent(AgentId::new(&a.agent)) };
                self.command(caller, &a.conversation_id, input, trace, "Assigned").await
            }
            Call::Close(a) => self.command(caller, &a.conversation_id, Input::Close { by }, trace, "Closed").await,
            Call::Reopen(a) => {
                let input = Input::Reopen { queue: a.queue };
                self.command(caller, &a.conversation_id, input, trace, "Reopened").await
            }
            Call::Note(a) => {
                let input = Input::Note { author: by, body: a.text };
                self.command(caller, &a.conversation_id, input, trace, "Note added").await
            }
            Call::HandToAi(a) => {
                self.command(caller, &a.conversation_id, Input::HandToAi, trace, "Handed to the AI").await
            }
            Call::Search(a) => self.search(caller, a).await,
            Call::QueueStats(a) => self.queue_stats(caller, a).await,
            Call::AgentStatus(a) => self.agent_status(caller, a).await,
            Call::Summarize(a) => {
                let state = self.resolve(caller, &a.conversation_id).await?;
                let text = self.hub.summarize(&caller.tenant, &state).await.map_err(|e| refused(e.to_string()))?;
                Ok(ToolOutcome::ok(text.clone(), json!({ "conversation_id": state.id.as_str(), "summary": text })))
            }
        }
    }

    /// Finds a conversation of the caller's tenant by id, or by contact key when that contact has
    /// exactly one. Another tenant's conversation is "not found", like one that does not exist.
    async fn resolve(&self, caller: &Caller, reference: &str) -> Result<ConversationState, Fail> {
        let reference = reference.trim();
        let not_found = || refused(format!("conversation {reference} not found"));
        if reference.contains(':') {
            let id = ConversationId::new(reference);
            return self.hub.conversation(&caller.tenant, &id).await.ok_or_else(not_found);
        }
        let mut query = ConversationQuery::tenant(caller.tenant.clone());
        query.contact = Some(reference.to_owned());
        query.limit = MAX_PAGE;
        let page = self.hub.list_conversations(&query).await.map_err(unavailable)?;
        let exact: Vec<_> =
            page.items.iter().filter(|s| s.contact.as_ref().is_some_and(|c| c.key == reference)).collect();
        match exact.as_slice() {
            [] => Err(not_found()),
            [one] => self.hub.conversation(&caller.tenant, &one.id).await.ok_or_else(not_found),
            many => {
                let ids: Vec<&str> = many.iter().map(|s| s.id.as_str()).collect();
                Err(refused(format!("{reference} has {} conversations; use one of: {}", ids.len(), ids.join(", "))))
            }
        }
    }

    async fn command(
        &self,
        caller: &Caller,
        reference: &str,
        input: Input,
        trace: &str,
        done: &str,
    ) -> Result<ToolOutcome, Fail> {
        let state = self.resolve(caller, reference).await?;
        let id = state.id.clone();
        let outcome = self.hub.execute(caller.tenant.clone(), id.clone(), input, trace).await.map_err(|e| match e {
            CommandError::Unavailable(why) => Fail::Unavailable(why),
            other => refused(format!("{id}: {other}")),
        })?;
        let after = self.hub.conversation(&caller.tenant, &id).await.unwrap_or(state);
        Ok(ToolOutcome::ok(
            format!("{done}: {}", line(&after)),
            json!({ "outcome": outcome, "conversation": summary(&after) }),
        ))
    }

    async fn list(&self, caller: &Caller, a: ListConversations) -> Result<ToolOutcome, Fail> {
        let mut query = ConversationQuery::tenant(caller.tenant.clone());
        query.status = a.status.map(|s| s.as_str().to_owned());
        query.queue = a.queue;
        query.agent = a.agent.map(AgentId::new);
        query.limit = page_size(a.limit, 20, MAX_PAGE);
        query.offset = a.offset.unwrap_or(0) as usize;
        let page = self.hub.list_conversations(&query).await.map_err(unavailable)?;
        let text = if page.items.is_empty() {
            format!("No conversations match ({} in all).", page.total)
        } else {
            let lines: Vec<String> = page.items.iter().map(|s| line(s)).collect();
            format!("{} of {} conversations:\n{}", page.items.len(), page.total, lines.join("\n"))
        };
        let items: Vec<Value> = page.items.iter().map(|s| summary(s)).collect();
        let next = query.offset + items.len();
        let next_offset = (next < page.total).then_some(next);
        Ok(ToolOutcome::ok(
            text,
            json!({ "total": page.total, "offset": query.offset, "next_offset": next_offset, "conversations": items }),
        ))
    }

    async fn get(&self, caller: &Caller, a: GetConversation) -> Result<ToolOutcome, Fail> {
        let state = self.resolve(caller, &a.conversation_id).await?;
        let messages = page_size(a.messages, 20, 100);
        let window = self.hub.policy(&caller.tenant).map_or(0, |p| p.service_window.as_millis() as u64);
        let open = state.service_window_open(self.hub.clock().now_ms(), window);
        Ok(ToolOutcome::ok(transcript(&state, messages, open), detail(&state, messages, open)))
    }

    async fn search(&self, caller: &Caller, a: SearchContacts) -> Result<ToolOutcome, Fail> {
        let needle = a.query.trim();
        if needle.chars().count() < 2 {
            return Err(refused("query must have at least 2 characters"));
        }
        let mut query = ConversationQuery::tenant(caller.tenant.clone());
        query.contact = Some(needle.to_owned());
        query.limit = page_size(a.limit, 20, 100);
        let page = self.hub.list_conversations(&query).await.map_err(unavailable)?;
        let contacts: Vec<Value> = page
            .items
            .iter()
            .filter_map(|s| {
                let c = s.contact.as_ref()?;
                Some(json!({ "key": c.key, "name": c.name, "conversation_id": s.id.as_str(), "status": s.status.name() }))
            })
            .collect();
        let text = if contacts.is_empty() {
            format!("No contact matches {needle:?}.")
        } else {
            page.items.iter().map(|s| line(s)).collect::<Vec<_>>().join("\n")
        };
        Ok(ToolOutcome::ok(text, json!({ "total": page.total, "contacts": contacts })))
    }

    fn queue_names(&self, caller: &Caller, only: Option<String>) -> Result<Vec<String>, Fail> {
        let policy = self.hub.policy(&caller.tenant).ok_or_else(|| refused("unknown tenant"))?;
        match only {
            Some(q) if policy.queue(&q).is_none() => Err(refused(format!("unknown queue {q}"))),
            Some(q) => Ok(vec![q]),
            None => Ok(policy.queues.iter().map(|q| q.name.clone()).collect()),
        }
    }

    async fn queue_stats(&self, caller: &Caller, a: QueueStats) -> Result<ToolOutcome, Fail> {
        let mut queues = Vec::new();
        let mut lines = Vec::new();
        for name in self.queue_names(caller, a.queue)? {
            let snap = self.hub.queue_snapshot(&caller.tenant, &name).await.map_err(unavailable)?;
            let oldest = snap.waiting.iter().map(|(_, waited)| *waited).max().unwrap_or(0) / 1000;
            let online: Vec<&str> = snap.agents.iter().filter(|a| a.1).map(|a| a.0.as_str()).collect();
            lines.push(format!(
                "{name}: {} waiting (oldest {oldest}s), {} agent(s) online{}",
                snap.waiting.len(),
                online.len(),
                if online.is_empty() { String::new() } else { format!(": {}", online.join(", ")) }
            ));
            queues.push(json!({
                "queue": name,
                "waiting": snap.waiting.len(),
                "oldest_wait_secs": oldest,
                "agents_online": online.len(),
                "agents": snap.agents.iter().map(|(id, on, cap, active)| json!({
                    "agent": id.as_str(), "online": on, "capacity": cap, "active": active
                })).collect::<Vec<_>>(),
            }));
        }
        Ok(ToolOutcome::ok(lines.join("\n"), json!({ "queues": queues })))
    }

    async fn agent_status(&self, caller: &Caller, a: AgentStatus) -> Result<ToolOutcome, Fail> {
        let mut agents: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for name in self.queue_names(caller, None)? {
            let snap = self.hub.queue_snapshot(&caller.tenant, &name).await.map_err(unavailable)?;
            for (id, online, capacity, active) in snap.agents {
                agents.entry(id.to_string()).or_default().push(json!({
                    "queue": name, "online": online, "capacity": capacity, "active": active
                }));
            }
        }
        if let Some(only) = &a.agent {
            agents.retain(|id, _| id == only);
            if agents.is_empty() {
                return Err(refused(format!("agent {only} is not known to any queue")));
            }
        }
        let lines: Vec<String> = agents
            .iter()
            .map(|(id, queues)| {
                let places: Vec<String> = queues
                    .iter()
                    .map(|q| {
                        let state = if q["online"] == json!(true) { "online" } else { "offline" };
                        format!("{} {state} {}/{}", q["queue"].as_str().unwrap_or(""), q["active"], q["capacity"])
                    })
                    .collect();
                format!("{id}: {}", places.join(", "))
            })
            .collect();
        let text = if lines.is_empty() { "No agent has connected yet.".to_owned() } else { lines.join("\n") };
        let data: Vec<Value> =
            agents.into_iter().map(|(id, queues)| json!({ "agent": id, "queues": queues })).collect();
        Ok(ToolOutcome::ok(text, json!({ "agents": data })))
    }
}
