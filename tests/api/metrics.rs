//! `/metrics`: the series an operator dashboards and alerts on, scraped over HTTP after real
//! traffic (runs on both backends; the lease series only on Redis).

use crate::helpers::*;
use std::collections::BTreeMap;
use std::time::Duration;
use switchboard_load_tests::fakes::openai::Mode;
use switchboard_load_tests::loadgen::hub::parse_metrics;

const BIA: &str = "5511912345678";

async fn scrape(app: &TestApp) -> (String, BTreeMap<String, f64>) {
    let res = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = res.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "one well-formed exposition:\n{text}");
    let parsed = parse_metrics(&text);
    (text, parsed)
}

/// The value of `series`, failing with the exposition when it is missing.
fn value(metrics: &BTreeMap<String, f64>, series: &str, text: &str) -> f64 {
    *metrics.get(series).unwrap_or_else(|| panic!("{series} missing from\n{text}"))
}

/// Sum of a family's rows (e.g. over partitions).
fn total(metrics: &BTreeMap<String, f64>, family: &str) -> f64 {
    metrics.iter().filter(|(k, _)| k.starts_with(&format!("{family}{{"))).map(|(_, v)| v).sum()
}

#[actix_web::test]
async fn one_ai_turn_shows_up_in_every_series_it_went_through() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    assert_eq!(app.wa_text(BIA, "wamid.M-1", "Oi, tudo bem?").await.status(), 200);
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    // The send's result is recorded after the provider answered: wait for the counters to settle.
    let (text, m) = eventually(Duration::from_secs(5), || async {
        let (text, m) = scrape(&app).await;
        (m.get("switchboard_outbound_sent_total") == Some(&1.0) && m.get("switchboard_mailbox_depth") == Some(&0.0))
            .then_some((text, m))
    })
    .await
    .expect("the reply is counted as sent and nothing waits in a mailbox");

    let v = |series: &str| value(&m, series, &text);
    assert_eq!(v(r#"switchboard_webhooks_total{channel="whatsapp",outcome="accepted"}"#), 1.0);
    assert_eq!(v(r#"switchboard_messages_total{channel="whatsapp",direction="in"}"#), 1.0);
    assert_eq!(v(r#"switchboard_messages_total{channel="whatsapp",direction="out"}"#), 1.0);
    // The customer's message, on the conversation's partition (the send's result went straight
    // to the running conversation); every partition's series exists, at zero if idle.
    assert_eq!(total(&m, "switchboard_events_published_total"), 1.0, "{text}");
    assert_eq!(total(&m, "switchboard_events_consumed_total"), 1.0, "{text}");
    let partitions = m.keys().filter(|k| k.starts_with("switchboard_events_published_total{")).count();
    assert_eq!(partitions, 64, "one series per partition");
    assert_eq!(v("switchboard_llm_calls_total"), 1.0);
    assert!(v("switchboard_llm_prompt_tokens_total") > 0.0);
    assert_eq!(v(r#"switchboard_reply_latency_seconds_count{channel="whatsapp"}"#), 1.0);
    assert!(v(r#"switchboard_reply_latency_seconds_sum{channel="whatsapp"}"#) < 5.0, "{text}");
    assert_eq!(v(r#"switchboard_reply_latency_seconds_bucket{le="+Inf",channel="whatsapp"}"#), 1.0);
    assert_eq!(v(r#"switchboard_agent_latency_seconds_count{agent="ai"}"#), 1.0);
    assert_eq!(v(r#"switchboard_circuit_breaker_state{breaker="llm:demo"}"#), 0.0);
    assert_eq!(v(r#"switchboard_circuit_breaker_state{breaker="outbound:demo:main"}"#), 0.0);
    assert_eq!(v("switchboard_live_conversations"), 1.0);
    assert!(v("process_resident_memory_bytes") > 1e6);
    for series in [
        "switchboard_passivations_total",
        "switchboard_rehydrations_total",
        "switchboard_console_sessions",
        "switchboard_webchat_sockets",
        "switchboard_llm_errors_total",
    ] {
        assert_eq!(v(series), 0.0, "{series}");
    }
    // Series with nothing to report yet are there at zero, so dashboards and rate() find them.
    assert_eq!(v(r#"switchboard_rate_limited_total{scope="llm"}"#), 0.0);
    assert_eq!(v(r#"switchboard_messages_total{channel="telegram",direction="in"}"#), 0.0);
    assert_eq!(v(r#"switchboard_agent_latency_seconds_count{agent="queue"}"#), 0.0);
    assert!(text.contains("# TYPE switchboard_tool_calls counter"), "{text}");
}

#[actix_web::test]
async fn a_failing_model_opens_its_breaker_on_the_dashboard() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai"), ("TENANTS__DEMO__AI__BREAKER_FAILURES", "1")]).await;
    app.openai.set_mode(Mode::Unauthorized);
    assert_eq!(app.wa_text(BIA, "wamid.M-2", "Alguém aí?").await.status(), 200);
    // The customer still gets the fallback text.
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    let (text, m) = scrape(&app).await;
    assert_eq!(value(&m, "switchboard_llm_errors_total", &text), 1.0);
    assert_eq!(value(&m, "switchboard_llm_fallbacks_total", &text), 1.0);
    assert_eq!(value(&m, r#"switchboard_circuit_breaker_state{breaker="llm:demo"}"#, &text), 2.0, "open");
}

/// One node on `redis` with that many partitions.
async fn on_redis(redis: &RedisServer, partitions: &str) -> TestApp {
    spawn_app(&[
        ("BACKEND__KIND", "redis"),
        ("BACKEND__REDIS__URL", redis.url()),
        ("BACKEND__REDIS__PREFIX", redis.prefix()),
        ("BACKEND__PARTITIONS", partitions),
    ])
    .await
}

#[actix_web::test]
async fn a_redis_node_reports_its_partitions_leases_and_dead_letters() {
    let redis = RedisServer::start().expect("redis-server");
    let app = on_redis(&redis, "8").await;
    let (text, m) = eventually(Duration::from_secs(10), || async {
        let (text, m) = scrape(&app).await;
        (m.get("switchboard_partitions_owned") == Some(&8.0)).then_some((text, m))
    })
    .await
    .expect("a node alone owns every partition");
    assert_eq!(value(&m, "switchboard_lease_acquisitions_total", &text), 8.0);
    assert_eq!(value(&m, "switchboard_lease_takeovers_total", &text), 0.0, "nobody ran them before");
    assert_eq!(value(&m, "switchboard_leases_lost_total", &text), 0.0);
    assert_eq!(value(&m, "switchboard_dlq_entries", &text), 0.0);
    assert_eq!(value(&m, "switchboard_dead_lettered_total", &text), 0.0);
}

/// The metric names a PromQL expression of the dashboard uses, as their families are declared
/// (`# TYPE` names: without `_total`, `_bucket`, `_count` or `_sum`).
fn families_used(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = ["switchboard_", "process_"].iter().filter_map(|p| rest.find(p)).min() {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_total", "_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.push(family.to_owned());
        rest = &tail[end..];
    }
    names
}

#[actix_web::test]
async fn every_series_the_grafana_dashboard_plots_is_exported() {
    let redis = RedisServer::start().expect("redis-server");
    let app = on_redis(&redis, "64").await;
    let (text, _) = scrape(&app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/switchboard-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 20, "the dashboard has its panels: {}", exprs.len());
    for expr in exprs {
        let families = families_used(expr);
        assert!(!families.is_empty(), "{expr} plots no switchboard series");
        for family in families {
            let declared =
                text.lines().any(|l| l.strip_prefix("# TYPE ").is_some_and(|t| t.split(' ').next() == Some(&family)));
            assert!(declared, "the dashboard plots {family} ({expr}), which /metrics does not export:\n{text}");
        }
    }
}
