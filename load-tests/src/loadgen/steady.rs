//! `loadgen steady`: many concurrent chats at a steady open-model rate with a slow model — by
//! default 20,000 messages over 10,000 conversations at 2,000 msg/s with a 300 ms model, so
//! hundreds of model calls and every conversation have messages in flight at once. CLEAN only
//! if nothing was lost, duplicated or answered out of order.

use anyhow::{Result, bail};
use serde_json::json;

use super::engine::Pace;
use super::scenario::CommonArgs;
use super::schedule::Schedule;

/// Options of `loadgen steady`.
#[derive(clap::Args, Clone, Debug)]
pub struct SteadyArgs {
    /// Conversations the messages are spread over, round-robin.
    #[arg(long, default_value_t = 10_000, value_name = "C")]
    pub conversations: usize,
    /// Messages to send.
    #[arg(long, default_value_t = 20_000, value_name = "M")]
    pub messages: usize,
    /// Offered messages per second (open model).
    #[arg(long, default_value_t = 2000.0, value_name = "R")]
    pub rate: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario; `Ok(false)` when the run completed with anomalies.
pub async fn run(args: &SteadyArgs) -> Result<bool> {
    if args.conversations == 0 || args.messages == 0 {
        bail!("--conversations and --messages must be positive");
    }
    let schedule = Schedule::constant(args.rate, args.messages)?;
    let mut rig = args.common.rig.clone();
    rig.ai_delay_ms = Some(rig.ai_delay(300));
    let spec = args.common.spec(args.conversations, args.messages, Pace::Open(schedule));
    let m = args.common.measure(&rig, "steady", &spec).await?;
    let title = format!(
        "steady: {} {} chats at {} msg/s, model {} ms",
        args.conversations,
        args.common.channel.name(),
        args.rate,
        m.ai_delay_ms
    );
    args.common.save("steady", &title, &m, json!({}), &[])?;
    Ok(m.outcome.is_clean())
}
