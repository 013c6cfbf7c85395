//! Semantic checks the types cannot express. Every problem is reported, with its path.

use super::types::{HoursConfig, Settings, TenantConfig};
use std::collections::HashMap;
use switchboard_adapters::tools::Plan;

/// Parses `HH:MM` into minutes of the day.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// Day name to index, Monday = 0.
pub fn parse_day(s: &str) -> Option<u8> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|d| d.eq_ignore_ascii_case(s)).map(|i| i as u8)
}

fn check_hours(hours: &HoursConfig, path: &str, errors: &mut Vec<String>) {
    let open = parse_hhmm(&hours.open);
    let close = parse_hhmm(&hours.close);
    if open.is_none() {
        errors.push(format!("{path}.open: expected HH:MM, got {:?}", hours.open));
    }
    if close.is_none() {
        errors.push(format!("{path}.close: expected HH:MM, got {:?}", hours.close));
    }
    if let (Some(o), Some(c)) = (open, close)
        && o >= c
    {
        errors.push(format!("{path}: open must be before close"));
    }
    for (i, d) in hours.days.iter().enumerate() {
        if parse_day(d).is_none() {
            errors.push(format!("{path}.days[{i}]: unknown day {d:?} (mon … sun)"));
        }
    }
}

const PLANS: &str = "expected starter, pro or unlimited";

/// A bearer token comes from exactly one place: an environment variable or its SHA-256.
fn check_token_source(at: &str, env: &Option<String>, sha256: &Option<String>, errors: &mut Vec<String>) {
    match (env, sha256) {
        (Some(_), None) => {}
        (None, Some(hash)) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {}
        (None, Some(_)) => errors.push(format!("{at}.token_sha256: expected 64 hex digits")),
        _ => errors.push(format!("{at}: set exactly one of token_env and token_sha256")),
    }
}

fn check_agents(p: &str, t: &TenantConfig, errors: &mut Vec<String>) {
    for (id, agent) in &t.agents {
        let at = format!("{p}.agents.{id}");
        check_token_source(&at, &agent.token_env, &agent.token_sha256, errors);
        if !matches!(agent.role.as_str(), "agent" | "admin") {
            errors.push(format!("{at}.role: expected agent or admin, got {:?}", agent.role));
        }
        for (i, queue) in agent.queues.iter().enumerate() {
            if !t.queues.iter().any(|q| q.name == *queue) {
                errors.push(format!("{at}.queues[{i}]: no queue named {queue:?} in this tenant"));
            }
        }
    }
}

fn check_tool_callers(p: &str, t: &TenantConfig, errors: &mut Vec<String>) {
    for (name, bot) in &t.bots {
        let at = format!("{p}.bots.{name}");
        check_token_source(&at, &bot.token_env, &bot.token_sha256, errors);
        if Plan::parse(&bot.plan).is_none() {
            errors.push(format!("{at}.plan: {PLANS}, got {:?}", bot.plan));
        }
        if bot.burst_per_second == 0 {
            errors.push(format!("{at}.burst_per_second: must be greater than 0"));
        }
    }
    for (i, s) in t.staff.iter().enumerate() {
        let at = format!("{p}.staff[{i}]");
        let known = match s.channel.split_once('.') {
            Some(("telegram", name)) => t.telegram.contains_key(name),
            Some(("whatsapp", name)) => t.whatsapp.contains_key(name),
            _ => false,
        };
        if !known {
            errors.push(format!(
                "{at}.channel: expected telegram.<name> or whatsapp.<name> of this tenant, got {:?}",
                s.channel
            ));
        }
        if s.name.trim().is_empty() {
            errors.push(format!("{at}.name: must not be empty"));
        }
        if Plan::parse(&s.plan).is_none() {
            errors.push(format!("{at}.plan: {PLANS}, got {:?}", s.plan));
        }
    }
}

/// Adds every semantic problem of `settings` to `errors`.
pub fn validate(settings: &Settings, errors: &mut Vec<String>) {
    if settings.server.bind.parse::<std::net::SocketAddr>().is_err() {
        errors.push(format!("server.bind: not a socket address: {:?}", settings.server.bind));
    }
    if settings.server.body_limit_bytes == 0 {
        errors.push("server.body_limit_bytes: must be greater than 0".into());
    }
    if settings.server.max_queued_replies == 0 {
        errors.push("server.max_queued_replies: must be greater than 0".into());
    }
    if !matches!(settings.server.log_format.as_str(), "text" | "json") {
        errors.push(format!("server.log_format: expected text or json, got {:?}", settings.server.log_format));
    }
    match settings.backend.kind.as_str() {
        "memory" => {}
        "redis" => {
            let r = &settings.backend.redis;
            let seeds = switchboard_adapters::redis::cluster_seeds(&r.url);
            if seeds.is_empty() || seeds.iter().any(|u| !u.starts_with("redis://") && !u.starts_with("rediss://")) {
                let shown = switchboard_adapters::redis::redacted(&r.url);
                errors.push(format!("backend.redis.url: expected redis:// or rediss://, got {shown:?}"));
            } else if !r.cluster && seeds.len() > 1 {
                errors.push(
                    "backend.redis.url: several URLs name a Redis Cluster: set backend.redis.cluster = true".into(),
                );
            } else if r.cluster
                && seeds.iter().any(|u| u.splitn(4, '/').nth(3).is_some_and(|db| !db.is_empty() && db != "0"))
            {
                errors.push("backend.redis.url: a Redis Cluster has database 0 only".into());
            }
            if r.prefix.is_empty() {
                errors.push("backend.redis.prefix: must not be empty".into());
            }
            if r.heartbeat_ms == 0 || r.heartbeat_ms * 2 > r.lease_ttl_ms {
                errors.push(format!(
                    "backend.redis.heartbeat_ms: must be positive and at most half of lease_ttl_ms ({}), got {}",
                    r.lease_ttl_ms, r.heartbeat_ms
                ));
            }
            if r.dlq_after == 0 {
                errors.push("backend.redis.dlq_after: must be greater than 0".into());
            }
            if r.stream_max_len == 0 {
                errors.push("backend.redis.stream_max_len: must be greater than 0".into());
            }
            if r.snapshot_every == 0 {
                errors.push("backend.redis.snapshot_every: must be greater than 0".into());
            }
            if r.node_id.is_empty() || !r.node_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                errors.push(format!("backend.redis.node_id: letters, digits, - _ and ., got {:?}", r.node_id));
            }
        }
        other => errors.push(format!("backend.kind: expected memory or redis, got {other:?}")),
    }
    if settings.backend.partitions == 0 {
        errors.push("backend.partitions: must be greater than 0".into());
    }
    if settings.backend.partition_capacity == 0 {
        errors.push("backend.partition_capacity: must be greater than 0".into());
    }
    if settings.tenants.is_empty() {
        errors.push("tenants: at least one tenant is required".into());
    }
    let mut phone_ids: HashMap<&str, String> = HashMap::new();
    let mut bots: HashMap<&str, String> = HashMap::new();
    for (id, t) in &settings.tenants {
        let p = format!("tenants.{id}");
        let queues: Vec<&str> = t.queues.iter().map(|q| q.name.as_str()).collect();
        let route_ok = |r: &str| r == "ai" || queues.contains(&r);
        if !(t.entry == "triage" || route_ok(&t.entry)) {
            errors.push(format!("{p}.entry: expected triage, ai or a queue name, got {:?}", t.entry));
        }
        if !queues.contains(&t.default_queue.as_str()) {
            errors.push(format!("{p}.default_queue: no queue named {:?}", t.default_queue));
        }
        for (i, q) in t.queues.iter().enumerate() {
            if !matches!(q.assign.as_str(), "round_robin" | "least_busy" | "manual") {
                errors.push(format!(
                    "{p}.queues[{i}].assign: expected round_robin, least_busy or manual, got {:?}",
                    q.assign
                ));
            }
            if queues.iter().filter(|n| **n == q.name).count() > 1 {
                errors.push(format!("{p}.queues[{i}].name: duplicate queue {:?}", q.name));
            }
            if let Some(h) = &q.hours {
                check_hours(h, &format!("{p}.queues[{i}].hours"), errors);
            }
        }
        if t.entry == "triage" && t.triage.options.is_empty() {
            errors.push(format!("{p}.triage.options: entry is triage but the menu has no options"));
        }
        for (i, o) in t.triage.options.iter().enumerate() {
            if !route_ok(&o.route) {
                errors.push(format!("{p}.triage.options[{i}].route: expected ai or a queue name, got {:?}", o.route));
            }
        }
        if t.history_window == 0 {
            errors.push(format!("{p}.history_window: must be greater than 0"));
        }
        if !t.ai.base_url.starts_with("http://") && !t.ai.base_url.starts_with("https://") {
            errors.push(format!("{p}.ai.base_url: expected an http(s) URL, got {:?}", t.ai.base_url));
        }
        for (name, wa) in &t.whatsapp {
            if !wa.graph_url.starts_with("http://") && !wa.graph_url.starts_with("https://") {
                errors.push(format!("{p}.whatsapp.{name}.graph_url: expected an http(s) URL, got {:?}", wa.graph_url));
            }
            if !wa.phone_number_id.is_empty()
                && let Some(other) = phone_ids.insert(&wa.phone_number_id, format!("{p}.whatsapp.{name}"))
            {
                errors.push(format!("{p}.whatsapp.{name}.phone_number_id: already used by {other}"));
            }
        }
        for (name, tg) in &t.telegram {
            if !tg.api_url.starts_with("http://") && !tg.api_url.starts_with("https://") {
                errors.push(format!("{p}.telegram.{name}.api_url: expected an http(s) URL, got {:?}", tg.api_url));
            }
            // The webhook path names only the channel, so names are global.
            if let Some(other) = bots.insert(name, format!("{p}.telegram.{name}")) {
                errors.push(format!("{p}.telegram.{name}: channel name already used by {other}"));
            }
        }
        if let Some(web) = &t.webchat {
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
            if web.name.is_empty() || web.name.len() > 32 || !web.name.chars().all(valid) {
                errors.push(format!("{p}.webchat.name: 1-32 characters of a-z, 0-9, _ and -, got {:?}", web.name));
            }
        }
        check_tool_callers(&p, t, errors);
        check_agents(&p, t, errors);
    }
}
