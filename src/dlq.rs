//! `switchboard dlq`: the dead letters of the Redis bus (entries the hub could not handle, see
//! the README's "Dead letters"), listed, or put back on their partition to be handled again.

use crate::config::Settings;
use std::io::Write;
use std::time::Duration;
use switchboard_adapters::redis::{DeadLetter, DeadLetters, Keys, RedisSettings, connect};

/// What to do with the dead letters.
#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// Every dead letter of every partition: id, partition, deliveries, time, reason, and what
    /// the payload is (event type and conversation).
    List {
        /// Machine-readable: a JSON array with the whole payloads.
        #[arg(long)]
        json: bool,
    },
    /// Puts dead letter ID back at the end of its partition's stream and deletes it from the
    /// dead letters (one atomic step).
    Replay {
        /// The dead letter's id, as `dlq list` shows it.
        id: String,
        /// The partition whose dead letters hold ID (needed only when several do).
        #[arg(long)]
        partition: Option<u32>,
    },
}

/// Why a `dlq` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqFailure {
    /// The memory backend has no dead letters: a usage error (exit status 2).
    #[error("the dead-letter stream needs backend = redis (backend.kind is {0:?})")]
    NeedsRedis(String),
    /// Redis unreachable, unknown id… (exit status 1).
    #[error("{0}")]
    Failed(String),
}

impl DlqFailure {
    /// The process exit status it stands for.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NeedsRedis(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

/// How much of a payload `dlq list` shows.
const PREVIEW_CHARS: usize = 60;

/// Runs `command` against the configured Redis, writing its report to `out`.
pub fn run(settings: &Settings, command: DlqCommand, out: &mut impl Write) -> Result<(), DlqFailure> {
    let b = &settings.backend;
    if b.kind != "redis" {
        return Err(DlqFailure::NeedsRedis(b.kind.clone()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DlqFailure::Failed(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let r = &b.redis;
        let redis = RedisSettings {
            url: r.url.clone(),
            cluster: r.cluster,
            prefix: r.prefix.clone(),
            partitions: b.partitions,
            pool_size: 1,
        };
        let pool = connect(&redis, Duration::from_millis(r.connect_timeout_ms))
            .await
            .map_err(|e| DlqFailure::Failed(e.to_string()))?;
        let letters = DeadLetters::new(pool, Keys::new(&r.prefix), b.partitions, r.stream_max_len);
        let failed = |e: switchboard_adapters::redis::DeadLetterError| DlqFailure::Failed(e.to_string());
        let written = |e: std::io::Error| DlqFailure::Failed(format!("cannot write the report: {e}"));
        match command {
            DlqCommand::List { json } => {
                let all = letters.list().await.map_err(failed)?;
                if json {
                    let text = serde_json::to_string_pretty(&all).map_err(|e| DlqFailure::Failed(e.to_string()))?;
                    writeln!(out, "{text}").map_err(written)
                } else {
                    write_table(&all, out).map_err(written)
                }
            }
            DlqCommand::Replay { id, partition } => {
                let done = letters.replay(&id, partition).await.map_err(failed)?;
                writeln!(
                    out,
                    "dead letter {} put back on partition {} as entry {} and removed from the dead letters",
                    done.dead_letter, done.partition, done.entry
                )
                .map_err(written)
            }
        }
    })
}

fn write_table(all: &[DeadLetter], out: &mut impl Write) -> std::io::Result<()> {
    if all.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:<16} {:>9} {:>10} {:<20} {:<28} PAYLOAD",
        "ID", "PARTITION", "DELIVERIES", "TIME (UTC)", "REASON"
    )?;
    for d in all {
        writeln!(
            out,
            "{:<16} {:>9} {:>10} {:<20} {:<28} {}",
            d.id,
            d.partition,
            d.deliveries,
            utc(d.time_ms),
            d.reason,
            preview(&d.payload)
        )?;
    }
    writeln!(out, "{} dead letter(s)", all.len())
}

/// What the payload is: an event's type and conversation, or else its start on one line.
fn preview(payload: &str) -> String {
    if let Ok(serde_json::Value::Object(event)) = serde_json::from_str(payload)
        && let (Some(kind), Some(conversation)) = (event["type"].as_str(), event["conversation_id"].as_str())
    {
        return format!("{kind} {conversation}");
    }
    let flat: String = payload.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a time in ms since the epoch: the RFC 3339 form, easier to read
/// in a terminal.
fn utc(ms: u64) -> String {
    switchboard_adapters::tools::rfc3339(ms).replace('T', " ").replace('Z', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_previews_read_well() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_764_632_096_000), "2025-12-01 23:34:56");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(preview("a\nb"), "a b");
        assert_eq!(
            preview(r#"{"type":"command.close","conversation_id":"demo:x","payload":{}}"#),
            "command.close demo:x"
        );
        assert_eq!(preview(&"é".repeat(70)), format!("{}…", "é".repeat(PREVIEW_CHARS)));
    }
}
