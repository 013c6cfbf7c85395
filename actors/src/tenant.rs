//! Per-tenant policy the actors follow: routing, menu, queues, AI behaviour and the texts the
//! hub sends. Built by the binary from the typed config.

use crate::domain::TenantId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a new ticket goes first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The triage menu.
    Triage,
    /// The AI agent.
    Ai,
    /// Straight to a queue.
    Queue(String),
}

/// How a queue picks an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignPolicy {
    /// Next online agent with room, in turn.
    RoundRobin,
    /// Online agent with the fewest open chats.
    LeastBusy,
    /// Agents pick conversations themselves.
    Manual,
}

/// Opening hours in the tenant's fixed UTC offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// Offset from UTC in minutes (São Paulo: -180).
    pub utc_offset_minutes: i32,
    /// Open days, 0 = Monday … 6 = Sunday.
    pub days: Vec<u8>,
    /// Opening minute of the day (e.g. 9:00 = 540).
    pub open_minute: u16,
    /// Closing minute of the day (exclusive).
    pub close_minute: u16,
}

impl BusinessHours {
    /// Whether `now_ms` (Unix ms) falls inside opening hours.
    pub fn is_open(&self, now_ms: u64) -> bool {
        let local_minutes = (now_ms / 60_000) as i64 + i64::from(self.utc_offset_minutes);
        let day_index = local_minutes.div_euclid(24 * 60);
        let minute = local_minutes.rem_euclid(24 * 60) as u16;
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let weekday = ((day_index + 3).rem_euclid(7)) as u8;
        self.days.contains(&weekday) && minute >= self.open_minute && minute < self.close_minute
    }
}

/// One queue of human agents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePolicy {
    /// Name, unique in the tenant.
    pub name: String,
    /// Assignment policy.
    pub assign: AssignPolicy,
    /// Opening hours; `None` = always open.
    pub hours: Option<BusinessHours>,
}

/// One triage menu option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageOption {
    /// Label shown.
    pub label: String,
    /// Where choosing it leads.
    pub route: Route,
}

/// The triage menu.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriagePolicy {
    /// Text above the options.
    pub greeting: String,
    /// Options, numbered from 1 in this order.
    pub options: Vec<TriageOption>,
    /// Invalid answers tolerated before the default queue takes over.
    pub max_invalid: u8,
    /// Sent before repeating the menu after an invalid answer.
    pub invalid_message: String,
}

/// AI agent behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AiPolicy {
    /// System prompt.
    pub system_prompt: String,
    /// Model call timeout.
    pub timeout: Duration,
    /// Sent when the model is down, slow or the breaker is open (then: handoff).
    pub fallback_message: String,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one trial call.
    pub breaker_cooldown: Duration,
    /// Model calls per second for the tenant (governor).
    pub rate_per_second: u32,
    /// Groups a burst of customer messages into one turn; `None` = answer at once.
    pub debounce: Option<Duration>,
    /// Model calls in flight at once for the tenant; more wait (within the timeout) instead of
    /// opening ever more connections to a struggling model.
    pub max_in_flight: usize,
}

/// Texts the hub sends on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notices {
    /// On enqueue; `{position}` and `{queue}` are replaced.
    pub queued: String,
    /// Outside business hours (the conversation stays queued).
    pub out_of_hours: String,
    /// On assignment; `{agent}` is replaced.
    pub assigned: String,
    /// When the AI hands off.
    pub handoff: String,
    /// When a triage option leads to the AI.
    pub ai_greeting: String,
}

/// Everything the actors need to know about a tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// Tenant id.
    pub id: TenantId,
    /// Where new tickets go.
    pub entry: Route,
    /// Queue for fallbacks, unknown queues and exhausted triage.
    pub default_queue: String,
    /// Human queues.
    pub queues: Vec<QueuePolicy>,
    /// The menu.
    pub triage: TriagePolicy,
    /// The AI.
    pub ai: AiPolicy,
    /// Hub texts.
    pub notices: Notices,
    /// Messages kept as context.
    pub history_window: usize,
    /// Idle time after which a conversation actor stops (its state stays in the store).
    pub idle_timeout: Duration,
    /// WhatsApp customer-service window (24 h): free-form replies only inside it.
    pub service_window: Duration,
}

impl TenantPolicy {
    /// A queue by name.
    pub fn queue(&self, name: &str) -> Option<&QueuePolicy> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// The queue to use for `requested`, falling back to the default queue.
    pub fn resolve_queue(&self, requested: Option<&str>) -> String {
        match requested {
            Some(q) if self.queue(q).is_some() => q.to_owned(),
            _ => self.default_queue.clone(),
        }
    }

    /// A small policy for tests: entry `entry`, queues `sales` (round robin) and `support`.
    pub fn example(id: &str, entry: Route) -> Self {
        Self {
            id: TenantId::new(id),
            entry,
            default_queue: "support".into(),
            queues: vec![
                QueuePolicy { name: "sales".into(), assign: AssignPolicy::RoundRobin, hours: None },
                QueuePolicy { name: "support".into(), assign: AssignPolicy::LeastBusy, hours: None },
            ],
            triage: TriagePolicy {
                greeting: "Olá! Como podemos ajudar?".into(),
                options: vec![
                    TriageOption { label: "Vendas".into(), route: Route::Queue("sales".into()) },
                    TriageOption { label: "Suporte".into(), route: Route::Queue("support".into()) },
                    TriageOption { label: "Assistente virtual".into(), route: Route::Ai },
                ],
                max_invalid: 2,
                invalid_message: "Opção inválida.".into(),
            },
            ai: AiPolicy {
                system_prompt: "You are a helpful assistant.".into(),
                timeout: Duration::from_secs(5),
                fallback_message: "Nosso assistente está indisponível. Vou chamar um atendente.".into(),
                breaker_failures: 5,
                breaker_cooldown: Duration::from_secs(30),
                rate_per_second: 1000,
                debounce: None,
                max_in_flight: 64,
            },
            notices: Notices {
                queued: "Você está na fila {queue}, posição {position}.".into(),
                out_of_hours: "Estamos fora do horário de atendimento.".into(),
                assigned: "{agent} vai te atender.".into(),
                handoff: "Vou te transferir para um atendente.".into(),
                ai_greeting: "Olá! Sou o assistente virtual. Como posso ajudar?".into(),
            },
            history_window: 20,
            idle_timeout: Duration::from_secs(300),
            service_window: Duration::from_secs(24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_hours_use_local_time() {
        let hours = BusinessHours {
            utc_offset_minutes: -180,
            days: vec![0, 1, 2, 3, 4],
            open_minute: 9 * 60,
            close_minute: 18 * 60,
        };
        // 2026-11-23 is a Monday. 12:00 UTC = 09:00 in São Paulo → open.
        let monday_noon_utc = 1_795_435_200_000;
        assert!(hours.is_open(monday_noon_utc));
        // 11:59 UTC = 08:59 local → closed.
        assert!(!hours.is_open(monday_noon_utc - 60_000));
        // Saturday 2026-11-28, 15:00 UTC → closed (weekend).
        assert!(!hours.is_open(monday_noon_utc + 5 * 86_400_000 + 3 * 3_600_000));
    }
}
