//! Turns the validated config into running parts: tenant policies, channel adapters and the
//! index webhooks use to find a channel. Channels whose secrets are missing are left out with
//! one warning each; the hub still starts.

use super::types::{Settings, TenantConfig};
use super::validate::{parse_day, parse_hhmm};
use crate::auth::{Accounts, AgentAccount, Role};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::domain::{AgentId, ChannelKind, ChannelRef, TenantId};
use switchboard_actors::hub::{ChannelSetup, TenantSetup};
use switchboard_actors::outbox::OutboxPolicy;
use switchboard_actors::ports::LlmClient;
use switchboard_actors::tenant::{
    AiPolicy, AssignPolicy, BusinessHours, Notices, QueuePolicy, Route, TenantPolicy, TriageOption, TriagePolicy,
};
use switchboard_adapters::openai::{OpenAiClient, OpenAiSettings};
use switchboard_adapters::phone::contact_key;
use switchboard_adapters::telegram::{TelegramOutbound, TelegramSettings};
use switchboard_adapters::tools::identity::token_sha256;
use switchboard_adapters::tools::{Caller, Directory, Plan};
use switchboard_adapters::webchat::{WebChatDesk, WebChatOutbound};
use switchboard_adapters::whatsapp::{WhatsAppOutbound, WhatsAppSettings};

/// A WhatsApp number as the webhook sees it.
pub struct WhatsAppEndpoint {
    /// Tenant.
    pub tenant: TenantId,
    /// Channel.
    pub channel: ChannelRef,
    /// Settings (secrets included).
    pub settings: WhatsAppSettings,
}

/// What the webhook routes need to find a channel.
#[derive(Default)]
pub struct ChannelIndex {
    /// By `phone_number_id`.
    pub whatsapp: HashMap<String, WhatsAppEndpoint>,
    /// Telegram bots by channel name.
    pub telegram: HashMap<String, (TenantId, ChannelRef, TelegramSettings)>,
    /// Web chat by tenant id.
    pub webchat: HashMap<TenantId, WebChatEndpoint>,
}

/// A tenant's web chat: its channel, the customers' open sockets, and the window's heading.
pub struct WebChatEndpoint {
    /// The channel (`webchat.<name>`).
    pub channel: ChannelRef,
    /// Open customer sockets; the channel's outbound sends through it.
    pub desk: Arc<WebChatDesk>,
    /// Heading of the chat window.
    pub title: String,
}

/// The result of wiring the config.
pub struct TenantWiring {
    /// For the hub.
    pub tenants: Vec<TenantSetup>,
    /// For the webhooks.
    pub channels: ChannelIndex,
    /// One line per disabled channel or missing model.
    pub warnings: Vec<String>,
}

fn route(s: &str) -> Route {
    match s {
        "triage" => Route::Triage,
        "ai" => Route::Ai,
        q => Route::Queue(q.to_owned()),
    }
}

fn assign(s: &str) -> AssignPolicy {
    match s {
        "least_busy" => AssignPolicy::LeastBusy,
        "manual" => AssignPolicy::Manual,
        _ => AssignPolicy::RoundRobin,
    }
}

/// The actors' policy for a tenant (config already validated).
pub fn policy(id: &str, t: &TenantConfig) -> TenantPolicy {
    TenantPolicy {
        id: TenantId::new(id),
        entry: route(&t.entry),
        default_queue: t.default_queue.clone(),
        queues: t
            .queues
            .iter()
            .map(|q| QueuePolicy {
                name: q.name.clone(),
                assign: assign(&q.assign),
                hours: q.hours.as_ref().map(|h| BusinessHours {
                    utc_offset_minutes: h.utc_offset_minutes,
                    days: h.days.iter().filter_map(|d| parse_day(d)).collect(),
                    open_minute: parse_hhmm(&h.open).unwrap_or(0),
                    close_minute: parse_hhmm(&h.close).unwrap_or(24 * 60),
                }),
            })
            .collect(),
        triage: TriagePolicy {
            greeting: t.triage.greeting.clone(),
            options: t
                .triage
                .options
                .iter()
                .map(|o| TriageOption { label: o.label.clone(), route: route(&o.route) })
                .collect(),
            max_invalid: t.triage.max_invalid.max(1),
            invalid_message: t.triage.invalid_message.clone(),
        },
        ai: AiPolicy {
            system_prompt: t.ai.system_prompt.clone(),
            timeout: Duration::from_millis(t.ai.timeout_ms),
            fallback_message: t.ai.fallback_message.clone(),
            breaker_failures: t.ai.breaker_failures,
            breaker_cooldown: Duration::from_secs(t.ai.breaker_cooldown_secs),
            rate_per_second: t.ai.rate_per_second,
            debounce: (t.ai.debounce_ms > 0).then(|| Duration::from_millis(t.ai.debounce_ms)),
            max_in_flight: t.ai.max_in_flight,
        },
        notices: Notices {
            queued: t.notices.queued.clone(),
            out_of_hours: t.notices.out_of_hours.clone(),
            assigned: t.notices.assigned.clone(),
            handoff: t.notices.handoff.clone(),
            ai_greeting: t.notices.ai_greeting.clone(),
        },
        history_window: t.history_window,
        idle_timeout: Duration::from_secs(t.idle_timeout_secs),
        service_window: Duration::from_secs(t.service_window_hours * 3600),
    }
}

fn secret(env: &BTreeMap<String, String>, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.is_empty()).cloned()
}

/// Builds policies, adapters and the channel index.
pub fn build_tenants(settings: &Settings, env: &BTreeMap<String, String>) -> anyhow::Result<TenantWiring> {
    let mut wiring = TenantWiring { tenants: Vec::new(), channels: ChannelIndex::default(), warnings: Vec::new() };
    for (id, t) in &settings.tenants {
        let tenant = TenantId::new(id);
        let mut channels = Vec::new();
        for (name, wa) in &t.whatsapp {
            let (token, app_secret, verify) =
                (secret(env, &wa.access_token_env), secret(env, &wa.app_secret_env), secret(env, &wa.verify_token_env));
            let (Some(access_token), Some(app_secret), Some(verify_token), false) =
                (token, app_secret, verify, wa.phone_number_id.is_empty())
            else {
                wiring.warnings.push(format!(
                    "tenant {id}: whatsapp channel {name} disabled: set {}, {}, {} and a phone_number_id",
                    wa.access_token_env, wa.app_secret_env, wa.verify_token_env
                ));
                continue;
            };
            let channel = ChannelRef::new(ChannelKind::WhatsApp, name);
            let ws = WhatsAppSettings {
                tenant: id.clone(),
                channel: name.clone(),
                access_token,
                app_secret,
                verify_token,
                phone_number_id: wa.phone_number_id.clone(),
                graph_url: wa.graph_url.clone(),
                graph_version: wa.graph_version.clone(),
            };
            let outbound = Arc::new(WhatsAppOutbound::new(&ws)?);
            let policy = OutboxPolicy { per_second: wa.rate_per_second, ..OutboxPolicy::default() };
            channels.push(ChannelSetup { channel: channel.clone(), outbound, policy });
            wiring
                .channels
                .whatsapp
                .insert(wa.phone_number_id.clone(), WhatsAppEndpoint { tenant: tenant.clone(), channel, settings: ws });
        }
        for (name, tg) in &t.telegram {
            let (Some(bot_token), Some(secret_token)) =
                (secret(env, &tg.bot_token_env), secret(env, &tg.secret_token_env))
            else {
                wiring.warnings.push(format!(
                    "tenant {id}: telegram channel {name} disabled: set {} and {}",
                    tg.bot_token_env, tg.secret_token_env
                ));
                continue;
            };
            let channel = ChannelRef::new(ChannelKind::Telegram, name);
            let ts = TelegramSettings {
                channel: name.clone(),
                tenant: id.clone(),
                bot_token,
                secret_token,
                api_url: tg.api_url.clone(),
            };
            let outbound = Arc::new(TelegramOutbound::new(&ts)?);
            let policy = OutboxPolicy {
                per_second: tg.rate_per_second,
                per_chat_per_second: Some(tg.per_chat_per_second),
                ..OutboxPolicy::default()
            };
            channels.push(ChannelSetup { channel: channel.clone(), outbound, policy });
            wiring.channels.telegram.insert(name.clone(), (tenant.clone(), channel, ts));
        }
        if let Some(web) = t.webchat.as_ref().filter(|w| w.enabled) {
            let channel = ChannelRef::new(ChannelKind::WebChat, &web.name);
            let desk = Arc::new(WebChatDesk::default());
            let outbound = Arc::new(WebChatOutbound::new(desk.clone()));
            // Sockets are local: no provider to pace for, so the limit only guards the node.
            let policy = OutboxPolicy { per_second: 10_000, ..OutboxPolicy::default() };
            channels.push(ChannelSetup { channel: channel.clone(), outbound, policy });
            wiring.channels.webchat.insert(tenant.clone(), WebChatEndpoint { channel, desk, title: web.title.clone() });
        }
        let llm: Option<Arc<dyn LlmClient>> = match secret(env, &t.ai.api_key_env) {
            Some(api_key) => Some(Arc::new(OpenAiClient::new(&OpenAiSettings {
                base_url: t.ai.base_url.clone(),
                api_key,
                model: t.ai.model.clone(),
                max_completion_tokens: t.ai.max_completion_tokens,
                temperature: None,
            })?)),
            None => {
                wiring.warnings.push(format!(
                    "tenant {id}: no AI model: set {} (until then the AI hands every conversation to {})",
                    t.ai.api_key_env, t.default_queue
                ));
                None
            }
        };
        wiring.tenants.push(TenantSetup { policy: policy(id, t), llm, channels });
    }
    Ok(wiring)
}

/// The SHA-256 of an account's token: read from the named environment variable, or given in
/// hex. `None` (with a warning for an unset variable) leaves the account out; a malformed hash
/// was already reported by validation.
fn token_hash(
    env: &BTreeMap<String, String>,
    token_env: &Option<String>,
    hex_sha256: &Option<String>,
    who: &str,
    warnings: &mut Vec<String>,
) -> Option<[u8; 32]> {
    match (token_env, hex_sha256) {
        (Some(var), _) => {
            let hash = secret(env, var).map(|token| token_sha256(&token));
            if hash.is_none() {
                warnings.push(format!("{who} disabled: set {var}"));
            }
            hash
        }
        (None, Some(hex_hash)) => {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex_hash, &mut hash).ok().map(|()| hash)
        }
        (None, None) => None,
    }
}

/// The tool callers of every tenant: bots by token, staff by the chat they write from. A bot
/// whose token variable is unset is left out with a warning.
pub fn build_callers(settings: &Settings, env: &BTreeMap<String, String>) -> (Directory, Vec<String>) {
    let mut directory = Directory::default();
    let mut warnings = Vec::new();
    for (id, t) in &settings.tenants {
        let tenant = TenantId::new(id);
        for (name, bot) in &t.bots {
            let Some(hash) =
                token_hash(env, &bot.token_env, &bot.token_sha256, &format!("tenant {id}: bot {name}"), &mut warnings)
            else {
                continue;
            };
            let plan = Plan::parse(&bot.plan).unwrap_or(Plan::Starter);
            let caller = Caller::new(tenant.clone(), format!("bot:{name}"), plan, bot.burst_per_second, bot.burst);
            directory.add_bot(hash, caller);
        }
        for s in &t.staff {
            let Some((kind, channel)) = s.channel.split_once('.') else { continue };
            if s.contact.trim().is_empty() {
                warnings.push(format!("tenant {id}: staff {} has no contact; their chat commands are off", s.name));
                continue;
            }
            let (kind, contact) = match kind {
                "whatsapp" => (ChannelKind::WhatsApp, contact_key(&s.contact)),
                _ => (ChannelKind::Telegram, s.contact.trim().to_owned()),
            };
            let plan = Plan::parse(&s.plan).unwrap_or(Plan::Pro);
            // Staff type commands: a person's pace, with room for a short burst.
            let caller = Caller::new(tenant.clone(), format!("staff:{}", s.name), plan, 2, 10);
            directory.add_staff(ChannelRef::new(kind, channel), &contact, caller);
        }
    }
    (directory, warnings)
}

/// The agent and admin accounts of every tenant, by token. An account whose token variable is
/// unset is left out with a warning, and so is one whose token another account already holds.
pub fn build_agents(settings: &Settings, env: &BTreeMap<String, String>) -> (Accounts, Vec<String>) {
    let mut accounts = Accounts::default();
    let mut warnings = Vec::new();
    for (id, t) in &settings.tenants {
        for (agent, config) in &t.agents {
            let who = format!("tenant {id}: agent {agent}");
            let Some(hash) = token_hash(env, &config.token_env, &config.token_sha256, &who, &mut warnings) else {
                continue;
            };
            let account = AgentAccount {
                tenant: TenantId::new(id),
                id: AgentId::new(agent),
                role: Role::parse(&config.role).unwrap_or(Role::Agent),
                queues: config.queues.iter().cloned().collect(),
            };
            if let Err(holder) = accounts.add(hash, account) {
                warnings.push(format!(
                    "tenant {id}: agent {agent} disabled: its token is already the token of agent {} of tenant {}",
                    holder.id, holder.tenant
                ));
            }
        }
    }
    (accounts, warnings)
}
