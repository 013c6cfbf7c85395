//! `loadgen chats`: closed-loop customers. Each of C conversations sends a message, waits for
//! its reply, waits a think time (fixed or exponential), and sends the next, for a given time:
//! many simultaneous conversations as real customers make them, where the offered rate follows
//! from the hub's speed instead of being imposed (compare with the open-model `steady`).

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use super::engine::Pace;
use super::scenario::{CommonArgs, ThinkKind};

/// Message slots a run gets at most, whatever the options (about 50 bytes each).
const MAX_SLOTS: usize = 4_000_000;

/// Options of `loadgen chats`.
#[derive(clap::Args, Clone, Debug)]
pub struct ChatsArgs {
    /// Simultaneous chats.
    #[arg(long, default_value_t = 1000, value_name = "C")]
    pub conversations: usize,
    /// Mean think time between a reply and the customer's next message, ms.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub think_ms: u64,
    /// Distribution of the think time.
    #[arg(long, value_enum, default_value_t = ThinkKind::Exp)]
    pub think: ThinkKind,
    /// Length of the run, seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub seconds: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Message slots and pacing of `conversations` chats for `secs` seconds: each chat gets room
/// for 1.5× the messages it would send if every reply took 5 ms, so it runs out of slots
/// only in a hub faster than that.
pub fn chats_pace(conversations: usize, secs: u64, think: ThinkKind, think_ms: u64) -> Result<(usize, Pace)> {
    if conversations == 0 || secs == 0 {
        bail!("chats need at least one conversation and one second");
    }
    let per_chat = (1.5 * (secs * 1000) as f64 / (think_ms + 5) as f64).ceil() as usize + 5;
    let slots = (per_chat * conversations).min(MAX_SLOTS / conversations.max(1) * conversations).max(conversations);
    let until = Some(Duration::from_secs(secs));
    Ok((slots, Pace::Chats { think: think.think(think_ms), until }))
}

/// Runs the scenario; `Ok(false)` when the run completed with anomalies.
pub async fn run(args: &ChatsArgs) -> Result<bool> {
    let (slots, pace) = chats_pace(args.conversations, args.seconds, args.think, args.think_ms)?;
    let spec = args.common.spec(args.conversations, slots, pace);
    let m = args.common.measure(&args.common.rig, "chats", &spec).await?;
    let title = format!(
        "chats: {} {} customers, {:?} think {} ms",
        args.conversations,
        args.common.channel.name(),
        args.think,
        args.think_ms
    );
    let extra = json!({ "chats": {
        "conversations": args.conversations,
        "think_ms": args.think_ms,
        "think": format!("{:?}", args.think).to_lowercase(),
        "seconds": args.seconds,
        "message_slots": slots,
        "sent_per_chat": m.outcome.sent as f64 / args.conversations as f64,
    }});
    args.common.save("chats", &title, &m, extra, &[])?;
    Ok(m.outcome.is_clean())
}
