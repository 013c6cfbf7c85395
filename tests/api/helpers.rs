//! `spawn_app()`: starts the hub with `config/default.toml`, every outside service pointed at a
//! local fake, and a clock the test controls.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchboard::app::{AppState, start};
use switchboard_actors::domain::{AgentId, ChannelKind, ChannelRef, ConversationId, TenantId};
use switchboard_actors::event::Input;
use switchboard_actors::hub::Hub;
use switchboard_actors::ports::{Clock, ManualClock, SystemClock};
use switchboard_actors::state::ConversationState;
use switchboard_load_tests::fakes::openai::FakeOpenAi;
use switchboard_load_tests::fakes::telegram::FakeTelegram;
use switchboard_load_tests::fakes::whatsapp::FakeGraph;
use switchboard_load_tests::payloads;
pub use switchboard_load_tests::redis_server::RedisServer;

pub const WA_TOKEN: &str = "wa-access-token";
pub const WA_SECRET: &str = "test-app-secret";
pub const WA_VERIFY: &str = "verify-me";
pub const PNID: &str = "200000000000002";
pub const TG_TOKEN: &str = "123456:TEST-TOKEN";
pub const TG_SECRET: &str = "tg-secret_token-1";
pub const BOT_TOKEN: &str = "demo-bot-token";
pub const OUTRA_BOT_TOKEN: &str = "outra-bot-token";
pub const STAFF_TG_ID: i64 = 777;
/// REST accounts: `ana` (agent of vendas and suporte) and `admin` of the demo tenant
/// (`config/default.toml`); `caio` (agent of suporte only) and `outra`'s admin `bia`
/// (`fixtures/rest.toml`).
pub const ANA_TOKEN: &str = "ana-agent-token";
pub const ADMIN_TOKEN: &str = "demo-admin-token";
pub const CAIO_TOKEN: &str = "caio-agent-token";
pub const OUTRA_ADMIN_TOKEN: &str = "outra-admin-token";

pub struct TestApp {
    pub url: String,
    pub hub: Hub,
    pub state: actix_web::web::Data<AppState>,
    pub graph: FakeGraph,
    pub telegram: FakeTelegram,
    pub openai: FakeOpenAi,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub warnings: Vec<String>,
    /// The Redis server of a hub on the Redis backend (stopped with the test).
    #[expect(dead_code, reason = "held so that the server lives as long as the hub")]
    redis: Option<RedisServer>,
}

/// `SWITCHBOARD_TEST_BACKEND=redis` runs every app-level test on the Redis backend (a throwaway
/// redis-server per test) instead of the memory one.
const BACKEND_ENV: &str = "SWITCHBOARD_TEST_BACKEND";

/// Config overrides as `SWITCHBOARD__…` pairs, e.g. `("TENANTS__DEMO__ENTRY", "ai")`.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with(None, overrides).await
}

pub const OUTRA_PNID: &str = "300000000000003";
pub const OUTRA_SECRET: &str = "outra-app-secret";

/// Like [`spawn_app`], with a config file layered over `config/default.toml` (a path under
/// `tests/api/fixtures/`).
pub async fn spawn_app_with(fixture: Option<&str>, overrides: &[(&str, &str)]) -> TestApp {
    let graph = FakeGraph::start(WA_TOKEN).await.expect("fake graph");
    let telegram = FakeTelegram::start(TG_TOKEN).await.expect("fake telegram");
    let openai = FakeOpenAi::start().await.expect("fake openai");
    let mut env: BTreeMap<String, String> = [
        ("WHATSAPP_ACCESS_TOKEN", WA_TOKEN.to_owned()),
        ("WHATSAPP_APP_SECRET", WA_SECRET.to_owned()),
        ("WHATSAPP_VERIFY_TOKEN", WA_VERIFY.to_owned()),
        ("WHATSAPP_PHONE_NUMBER_ID", PNID.to_owned()),
        ("WHATSAPP_GRAPH_URL", graph.base_url()),
        ("TELEGRAM_BOT_TOKEN", TG_TOKEN.to_owned()),
        ("TELEGRAM_SECRET_TOKEN", TG_SECRET.to_owned()),
        ("TELEGRAM_API_URL", telegram.base_url()),
        ("OPENAI_API_KEY", "sk-test".to_owned()),
        ("OPENAI_BASE_URL", openai.base_url()),
        ("OPENAI_MODEL", "test-model".to_owned()),
        // Tests wait for nothing: lift the production rate limits and make retries quick.
        ("SWITCHBOARD__TENANTS__DEMO__AI__RATE_PER_SECOND", "100000".to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__AI__TIMEOUT_MS", "3000".to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__WHATSAPP__MAIN__RATE_PER_SECOND", "100000".to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__TELEGRAM__DEMO__PER_CHAT_PER_SECOND", "1000".to_owned()),
        ("OUTRA_WA_TOKEN", WA_TOKEN.to_owned()),
        ("OUTRA_WA_SECRET", OUTRA_SECRET.to_owned()),
        ("OUTRA_WA_VERIFY", "outra-verify".to_owned()),
        ("SWITCHBOARD_DEMO_BOT_TOKEN", BOT_TOKEN.to_owned()),
        ("OUTRA_BOT_TOKEN", OUTRA_BOT_TOKEN.to_owned()),
        ("DEMO_STAFF_TELEGRAM_ID", STAFF_TG_ID.to_string()),
        ("DEMO_AGENT_ANA_TOKEN", ANA_TOKEN.to_owned()),
        ("DEMO_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("DEMO_AGENT_CAIO_TOKEN", CAIO_TOKEN.to_owned()),
        ("OUTRA_ADMIN_TOKEN", OUTRA_ADMIN_TOKEN.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let chosen = overrides.iter().any(|(k, _)| *k == "BACKEND__KIND");
    let redis = (!chosen && std::env::var(BACKEND_ENV).is_ok_and(|b| b == "redis"))
        .then(|| RedisServer::start().expect("redis-server for SWITCHBOARD_TEST_BACKEND=redis"));
    if let Some(r) = &redis {
        env.insert("SWITCHBOARD__BACKEND__KIND".into(), "redis".into());
        env.insert("SWITCHBOARD__BACKEND__REDIS__URL".into(), r.url().to_owned());
        env.insert("SWITCHBOARD__BACKEND__REDIS__PREFIX".into(), r.prefix().to_owned());
    }
    for (k, v) in overrides {
        env.insert(format!("SWITCHBOARD__{k}"), (*v).to_owned());
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let file = fixture.map(|f| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures").join(f));
    let settings = switchboard::config::load(Some(&base), file.as_deref(), &env).expect("valid test config");
    let clock = Arc::new(ManualClock::at(SystemClock.now_ms()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let running = start(&settings, &env, clock.clone(), listener).await.expect("hub starts");
    actix_web::rt::spawn(running.server);
    TestApp {
        url: format!("http://127.0.0.1:{port}"),
        hub: running.hub,
        state: running.state,
        graph,
        telegram,
        openai,
        clock,
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
        warnings: running.warnings,
        redis,
    }
}

impl TestApp {
    pub fn tenant(&self) -> TenantId {
        TenantId::new("demo")
    }

    pub fn wa_conversation(&self, phone: &str) -> ConversationId {
        let key = switchboard_adapters::phone::contact_key(phone);
        ConversationId::for_contact(&self.tenant(), &ChannelRef::new(ChannelKind::WhatsApp, "main"), &key)
    }

    pub fn tg_conversation(&self, user: i64) -> ConversationId {
        ConversationId::for_contact(&self.tenant(), &ChannelRef::new(ChannelKind::Telegram, "demo"), &user.to_string())
    }

    /// POSTs a correctly signed WhatsApp webhook.
    pub async fn post_wa(&self, body: &str) -> reqwest::Response {
        let sig = payloads::wa_sign(WA_SECRET, body.as_bytes());
        self.post_wa_raw(body.as_bytes().to_vec(), Some(&sig)).await
    }

    pub async fn post_wa_raw(&self, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("hub reachable")
    }

    /// A customer's WhatsApp text.
    pub async fn wa_text(&self, from: &str, wamid: &str, text: &str) -> reqwest::Response {
        self.post_wa(&payloads::wa_text(PNID, from, wamid, text)).await
    }

    /// POSTs a Telegram update with the right secret.
    pub async fn post_tg(&self, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/telegram/demo", self.url))
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .body(body.to_owned())
            .send()
            .await
            .expect("hub reachable")
    }

    pub async fn state_of(&self, id: &ConversationId) -> Option<ConversationState> {
        self.hub.conversation(&self.tenant(), id).await
    }

    pub async fn agent_online(&self, queue: &str, agent: &str, capacity: u32) {
        self.hub.set_presence(&self.tenant(), queue, AgentId::new(agent), true, capacity).await.unwrap();
    }

    pub async fn command(&self, id: &ConversationId, input: Input) -> switchboard_actors::conversation::ProcessResult {
        self.hub.execute(self.tenant(), id.clone(), input, "test-trace").await
    }

    /// Texts the fake Graph API received for `to`, in order.
    pub fn wa_texts_to(&self, to: &str) -> Vec<String> {
        self.graph
            .sent()
            .iter()
            .filter(|r| r.body["to"] == to)
            .map(|r| {
                r.body["text"]["body"]
                    .as_str()
                    .or_else(|| r.body["interactive"]["body"]["text"].as_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
