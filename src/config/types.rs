//! The config file's shape. Every field's `///` line is its user documentation.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Storage and event bus.
    #[serde(default)]
    pub backend: BackendConfig,
    /// Tenants by id.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// Threads running actors.
    pub actor_workers: usize,
    /// Largest accepted request body, in bytes (bigger → 413).
    pub body_limit_bytes: usize,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Seconds to drain in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Replies the outboxes may hold before webhooks get 503 (slow or failing providers).
    pub max_queued_replies: usize,
    /// `Host` header values `/mcp` accepts (protection against DNS rebinding): a bare name
    /// matches any port, `name:port` only that port. An empty list turns the check off.
    pub mcp_allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            http_workers: 2,
            actor_workers: 2,
            body_limit_bytes: 1024 * 1024,
            log_format: "text".into(),
            shutdown_timeout_secs: 10,
            max_queued_replies: 10_000,
            mcp_allowed_hosts: default_mcp_hosts(),
        }
    }
}

/// Backend settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendConfig {
    /// `memory` (one process, nothing to install, state lost on restart) or `redis` (durable,
    /// shared by many nodes; settings in `[backend.redis]`).
    pub kind: String,
    /// Conversation partitions (unit of ordering and placement).
    pub partitions: u32,
    /// Events a partition queues before webhooks get 503 + Retry-After.
    pub partition_capacity: usize,
    /// Seconds a provider message id is remembered for dedup (default: 1 day in memory, 7 days in
    /// Redis, as WhatsApp redelivers for up to 7 days).
    pub dedup_ttl_secs: Option<u64>,
    /// Events a partition consumer takes at once (default: 256 in memory, 32 in Redis).
    pub batch: Option<usize>,
    /// Journal events the memory backend keeps per conversation (older ones are dropped).
    pub memory_journal_limit: usize,
    /// The Redis backend.
    pub redis: RedisConfig,
}

impl BackendConfig {
    /// The consumer batch in effect. Redis's is smaller: every event in hand costs Redis round
    /// trips, and 64 partitions × 256 events in hand on an overloaded node queued so many behind
    /// each other that replies took longer than the 2 s command limit (BENCHMARKS.md, session 10).
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(if self.kind == "redis" { 32 } else { 256 }).max(1)
    }

    /// The dedup TTL in effect.
    pub fn dedup_ttl_secs(&self) -> u64 {
        self.dedup_ttl_secs.unwrap_or(if self.kind == "redis" { 7 * 86_400 } else { 86_400 })
    }
}

/// Redis backend settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db` (or `rediss://`); with `cluster`, one or more nodes of
    /// the Redis Cluster, comma-separated (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`).
    pub url: String,
    /// `url` names nodes of a Redis Cluster (three masters or more) instead of one server.
    pub cluster: bool,
    /// Prefix of every key (several hubs may share one Redis with different prefixes).
    pub prefix: String,
    /// This node's name in the partitions' consumer groups; unique per node and stable across its
    /// restarts, so a restarted node takes back what it had been given and not acknowledged.
    pub node_id: String,
    /// Pooled connections for leases, claims and health checks (blocking stream reads use their
    /// own, one per partition, and the hot path one per thread); single server only: on a
    /// Cluster each component keeps one cluster connection.
    pub pool_size: usize,
    /// Milliseconds to wait for Redis at start-up before giving up with an error.
    pub connect_timeout_ms: u64,
    /// Milliseconds a partition lease (and a node's liveness) lasts unless renewed: a crashed
    /// node's partitions move to others after about this long.
    pub lease_ttl_ms: u64,
    /// Milliseconds between a node's heartbeats (lease renewals, rebalancing); well under the TTL.
    pub heartbeat_ms: u64,
    /// Failed deliveries (the node crashed, hung or lost the partition while holding the event)
    /// after which an event is moved to its partition's dead-letter stream (`switchboard dlq`).
    pub dlq_after: u64,
    /// Entries a partition stream may hold; at the bound webhooks answer 503 + Retry-After.
    pub stream_max_len: u64,
    /// Milliseconds an event may wait in its partition before it is handled: past this, the
    /// partition's new webhooks answer 503 + Retry-After for a second (renewed while it lasts), so
    /// providers hold the surplus instead of a backlog that every customer waits behind. `0`: off.
    pub max_queue_delay_ms: u64,
    /// Journal events between two snapshots of a conversation: loading replays at most this
    /// many events on the last snapshot, and each step writes only its events, not the state.
    pub snapshot_every: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            prefix: "sb:".into(),
            node_id: "node-1".into(),
            pool_size: 32,
            connect_timeout_ms: 3000,
            lease_ttl_ms: 3000,
            heartbeat_ms: 500,
            dlq_after: 5,
            stream_max_len: 100_000,
            max_queue_delay_ms: 2_000,
            snapshot_every: 16,
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            kind: "memory".into(),
            partitions: 64,
            partition_capacity: 512,
            dedup_ttl_secs: None,
            batch: None,
            memory_journal_limit: 1000,
            redis: RedisConfig::default(),
        }
    }
}

/// One tenant (business).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Where a new ticket goes: `triage`, `ai`, or a queue name.
    pub entry: String,
    /// Queue for fallbacks, unknown queue names and exhausted triage.
    pub default_queue: String,
    /// Messages kept as context for agents.
    #[serde(default = "default_history")]
    pub history_window: usize,
    /// Seconds of inactivity before a conversation actor is passivated.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    /// WhatsApp customer-service window in hours.
    #[serde(default = "default_window")]
    pub service_window_hours: u64,
    /// Human queues.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// The triage menu.
    pub triage: TriageConfig,
    /// The AI agent.
    pub ai: AiConfig,
    /// Texts the hub sends on its own.
    pub notices: NoticesConfig,
    /// WhatsApp numbers by channel name.
    #[serde(default)]
    pub whatsapp: BTreeMap<String, WhatsAppConfig>,
    /// Telegram bots by channel name (the name is the webhook path: `/webhooks/telegram/{name}`).
    #[serde(default)]
    pub telegram: BTreeMap<String, TelegramConfig>,
    /// The web-chat widget (`/widget?tenant=<id>`, `/ws/widget`); off when absent.
    #[serde(default)]
    pub webchat: Option<WebChatConfig>,
    /// Programs allowed to call the tools over MCP, by name.
    #[serde(default)]
    pub bots: BTreeMap<String, BotConfig>,
    /// Staff contacts whose `/commands` to the tenant's bot run the tools.
    #[serde(default)]
    pub staff: Vec<StaffConfig>,
    /// Human agents and admins of the REST API (and the console), by agent id.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
}

/// A human agent or admin, authenticated by a bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Environment variable holding the token; unset → the account is disabled with a warning.
    pub token_env: Option<String>,
    /// Or the token's SHA-256 in hex (the token itself then lives only with the agent).
    pub token_sha256: Option<String>,
    /// `agent` (works the conversations of its queues) or `admin` (everything of the tenant).
    #[serde(default = "default_role")]
    pub role: String,
    /// The queues an agent works in (names of this tenant's queues).
    #[serde(default)]
    pub queues: Vec<String>,
}

/// A program calling the tools (MCP client), authenticated by a bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotConfig {
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// Or the token's SHA-256 in hex (the token itself then lives only with the client).
    pub token_sha256: Option<String>,
    /// `starter` (200 calls/day), `pro` (1,000/day) or `unlimited`.
    #[serde(default = "default_plan")]
    pub plan: String,
    /// Average calls per second allowed.
    #[serde(default = "default_burst_rate")]
    pub burst_per_second: u32,
    /// Calls allowed at once above the average.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

/// A staff member who may send chat commands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffConfig {
    /// Who (appears in audit and as the author of notes and closes).
    pub name: String,
    /// The tenant channel they write to: `telegram.<name>` or `whatsapp.<name>`.
    pub channel: String,
    /// Their Telegram user id or WhatsApp phone number; empty turns them off.
    pub contact: String,
    /// Quota plan for their commands.
    #[serde(default = "default_staff_plan")]
    pub plan: String,
}

fn default_mcp_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}
fn default_role() -> String {
    "agent".into()
}
fn default_plan() -> String {
    "starter".into()
}
fn default_staff_plan() -> String {
    "pro".into()
}
fn default_burst_rate() -> u32 {
    5
}
fn default_burst() -> u32 {
    20
}

pub(crate) fn default_history() -> usize {
    20
}
fn default_idle() -> u64 {
    300
}
fn default_window() -> u64 {
    24
}

/// A human queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Name, unique in the tenant.
    pub name: String,
    /// `round_robin`, `least_busy` or `manual`.
    #[serde(default = "default_assign")]
    pub assign: String,
    /// Opening hours; absent = always open.
    pub hours: Option<HoursConfig>,
}

fn default_assign() -> String {
    "round_robin".into()
}

/// Opening hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    /// Offset from UTC in minutes (São Paulo: -180).
    pub utc_offset_minutes: i32,
    /// Open days: `mon` … `sun`.
    pub days: Vec<String>,
    /// Opening time, `HH:MM`.
    pub open: String,
    /// Closing time, `HH:MM`.
    pub close: String,
}

/// The triage menu.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageConfig {
    /// Text above the options.
    pub greeting: String,
    /// Invalid answers tolerated before the default queue.
    #[serde(default = "default_max_invalid")]
    pub max_invalid: u8,
    /// Sent before the menu is repeated.
    pub invalid_message: String,
    /// Options, numbered from 1.
    #[serde(default)]
    pub options: Vec<TriageOptionConfig>,
}

fn default_max_invalid() -> u8 {
    3
}

/// One menu option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageOptionConfig {
    /// Label shown.
    pub label: String,
    /// `ai` or a queue name.
    pub route: String,
}

/// The AI agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiConfig {
    /// OpenAI-compatible base URL, including `/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Environment variable holding the API key; unset → no model (fallback + handoff).
    pub api_key_env: String,
    /// System prompt.
    pub system_prompt: String,
    /// Model call timeout in milliseconds.
    #[serde(default = "default_ai_timeout")]
    pub timeout_ms: u64,
    /// Sent when the model cannot answer; the conversation then goes to the default queue.
    pub fallback_message: String,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds the breaker stays open.
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown_secs: u64,
    /// Model calls per second for this tenant.
    #[serde(default = "default_ai_rate")]
    pub rate_per_second: u32,
    /// Milliseconds to wait for more messages before answering a burst (0 = off).
    #[serde(default)]
    pub debounce_ms: u64,
    /// Upper bound of answer tokens.
    pub max_completion_tokens: Option<u32>,
    /// Model calls in flight at once for this tenant; more wait, within the timeout.
    #[serde(default = "default_ai_in_flight")]
    pub max_in_flight: usize,
}

fn default_ai_in_flight() -> usize {
    256
}

fn default_ai_timeout() -> u64 {
    15_000
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> u64 {
    30
}
fn default_ai_rate() -> u32 {
    50
}

/// Texts the hub sends on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticesConfig {
    /// On enqueue; `{queue}` and `{position}` are replaced.
    pub queued: String,
    /// Outside business hours.
    pub out_of_hours: String,
    /// On assignment; `{agent}` is replaced.
    pub assigned: String,
    /// When the AI hands off to a human.
    pub handoff: String,
    /// When a menu option leads to the AI.
    pub ai_greeting: String,
}

/// One WhatsApp Cloud API number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// The number's `phone_number_id`; empty → channel disabled.
    pub phone_number_id: String,
    /// Environment variable with the Graph access token.
    pub access_token_env: String,
    /// Environment variable with the app secret (webhook signatures).
    pub app_secret_env: String,
    /// Environment variable with the webhook verify token.
    pub verify_token_env: String,
    /// Graph API base URL.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Graph API version.
    #[serde(default = "default_graph_version")]
    pub graph_version: String,
    /// Messages per second for this number.
    #[serde(default = "default_wa_rate")]
    pub rate_per_second: u32,
}

fn default_graph_url() -> String {
    "https://graph.facebook.com".into()
}
fn default_graph_version() -> String {
    "v21.0".into()
}
fn default_wa_rate() -> u32 {
    80
}

/// The tenant's web chat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebChatConfig {
    /// Whether customers may chat on `/widget`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Channel name in conversation ids (`<tenant>:webchat.<name>:<visitor>`).
    #[serde(default = "default_webchat_name")]
    pub name: String,
    /// Heading of the chat window.
    #[serde(default = "default_webchat_title")]
    pub title: String,
}

fn default_true() -> bool {
    true
}
fn default_webchat_name() -> String {
    "site".into()
}
fn default_webchat_title() -> String {
    "Chat".into()
}

/// One Telegram bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Environment variable with the bot token.
    pub bot_token_env: String,
    /// Environment variable with the webhook secret token.
    pub secret_token_env: String,
    /// Bot API base URL.
    #[serde(default = "default_tg_url")]
    pub api_url: String,
    /// Messages per second for the bot.
    #[serde(default = "default_tg_rate")]
    pub rate_per_second: u32,
    /// Messages per second to one chat.
    #[serde(default = "default_tg_chat_rate")]
    pub per_chat_per_second: u32,
}

fn default_tg_url() -> String {
    "https://api.telegram.org".into()
}
fn default_tg_rate() -> u32 {
    30
}
fn default_tg_chat_rate() -> u32 {
    1
}
