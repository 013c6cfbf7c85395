//! When messages are due: open-model rate schedules made of phases (steady, burst, overload)
//! and the think time of closed-loop chats.
//!
//! A schedule fixes every message's due time before the run starts, so the latency of message
//! `i` counts from `due(i)` whatever the hub does (no coordinated omission), and a burst is
//! exactly as dense as asked even when the hub falls behind.

use std::time::Duration;

use anyhow::{Result, bail};

/// A stretch of the run at one offered rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// Name in reports ("baseline", "burst", ...).
    pub name: String,
    /// Offered messages per second (> 0).
    pub rate: f64,
    /// Length in seconds (> 0).
    pub secs: f64,
}

impl Phase {
    /// A phase of `secs` seconds at `rate` messages per second.
    pub fn new(name: &str, rate: f64, secs: f64) -> Phase {
        Phase { name: name.to_owned(), rate, secs }
    }

    /// Messages this phase sends: `rate × secs`, rounded.
    pub fn messages(&self) -> usize {
        (self.rate * self.secs).round() as usize
    }
}

/// Phases run one after the other; message `i` is due at a fixed offset from the run's start.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    phases: Vec<Phase>,
}

impl Schedule {
    /// Checks the phases: at least one, every rate and length finite and positive.
    pub fn new(phases: Vec<Phase>) -> Result<Schedule> {
        if phases.is_empty() {
            bail!("a schedule needs at least one phase");
        }
        for p in &phases {
            if !(p.rate.is_finite() && p.rate > 0.0 && p.secs.is_finite() && p.secs > 0.0) {
                bail!("phase {:?}: rate and length must be positive (got {} msg/s for {} s)", p.name, p.rate, p.secs);
            }
        }
        Ok(Schedule { phases })
    }

    /// `messages` at a constant `rate`: message `i` due at `i / rate`, as the original engine.
    pub fn constant(rate: f64, messages: usize) -> Result<Schedule> {
        Schedule::new(vec![Phase::new("steady", rate, messages as f64 / rate)])
    }

    /// The phases, in order.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Messages over all phases.
    pub fn messages(&self) -> usize {
        self.phases.iter().map(Phase::messages).sum()
    }

    /// Length of the schedule.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.phases.iter().map(|p| p.secs).sum())
    }

    /// Mean offered rate over the whole schedule.
    pub fn mean_rate(&self) -> f64 {
        self.messages() as f64 / self.duration().as_secs_f64()
    }

    /// When message `i` is due after the start: inside its phase, evenly spaced at the phase's
    /// rate. Indices past the end continue at the last phase's rate.
    pub fn due(&self, i: usize) -> Duration {
        let (mut start, mut first) = (0.0, 0usize);
        for (k, p) in self.phases.iter().enumerate() {
            let n = p.messages();
            if i < first + n || k + 1 == self.phases.len() {
                return Duration::from_secs_f64(start + (i - first) as f64 / p.rate);
            }
            start += p.secs;
            first += n;
        }
        unreachable!("a schedule has at least one phase")
    }

    /// Start and end of each phase, seconds after the run's start, with its name.
    pub fn bounds(&self) -> Vec<(String, f64, f64)> {
        let mut start = 0.0;
        self.phases
            .iter()
            .map(|p| {
                let b = (p.name.clone(), start, start + p.secs);
                start += p.secs;
                b
            })
            .collect()
    }
}

/// How long a simulated customer waits after a reply before typing the next message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Think {
    /// Always the same pause.
    Fixed(Duration),
    /// Exponentially distributed with this mean (memoryless customers: arrivals of a large
    /// population are then close to Poisson, like real traffic).
    Exponential(Duration),
}

impl Think {
    /// The mean pause.
    pub fn mean(&self) -> Duration {
        match *self {
            Think::Fixed(d) | Think::Exponential(d) => d,
        }
    }

    /// The pause of message `i` (deterministic per index, so runs are repeatable).
    pub fn pause(&self, i: usize) -> Duration {
        match *self {
            Think::Fixed(d) => d,
            Think::Exponential(mean) => {
                // Inverse transform of a uniform in (0, 1]; capped at 10× the mean so one
                // unlucky draw cannot park a conversation for the rest of the run.
                let u = (unit_hash(i as u64) + 1.0) / 2f64.powi(53);
                mean.mul_f64((-u.ln()).min(10.0))
            }
        }
    }
}

/// A well-mixed hash of `x` as an integer in [0, 2^53), as f64.
fn unit_hash(x: u64) -> f64 {
    // splitmix64 finaliser.
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn constant_schedule_spaces_messages_evenly() {
        let s = Schedule::constant(1000.0, 5000).unwrap();
        assert_eq!(s.messages(), 5000);
        assert!((secs(s.duration()) - 5.0).abs() < 1e-9);
        assert!((secs(s.due(0))).abs() < 1e-12);
        assert!((secs(s.due(1)) - 0.001).abs() < 1e-12);
        assert!((secs(s.due(4999)) - 4.999).abs() < 1e-9);
    }

    #[test]
    fn phases_follow_each_other_at_their_own_rates() {
        // 2 s at 100/s, 1 s at 1000/s, 2 s at 100/s: 200 + 1000 + 200 messages.
        let s = Schedule::new(vec![
            Phase::new("baseline", 100.0, 2.0),
            Phase::new("burst", 1000.0, 1.0),
            Phase::new("after", 100.0, 2.0),
        ])
        .unwrap();
        assert_eq!(s.messages(), 1400);
        assert!((s.mean_rate() - 280.0).abs() < 1e-9);
        // Last of the baseline, first and last of the burst, first of the tail.
        assert!((secs(s.due(199)) - 1.99).abs() < 1e-9);
        assert!((secs(s.due(200)) - 2.0).abs() < 1e-9);
        assert!((secs(s.due(1199)) - 2.999).abs() < 1e-9);
        assert!((secs(s.due(1200)) - 3.0).abs() < 1e-9);
        assert!((secs(s.due(1399)) - 4.99).abs() < 1e-9);
        // Due times never go backwards, and the burst packs 10× as many per second.
        let in_window = |a: f64, b: f64| (0..1400).filter(|&i| (a..b).contains(&secs(s.due(i)))).count();
        assert_eq!(in_window(0.0, 1.0), 100);
        assert_eq!(in_window(2.0, 3.0), 1000);
        assert!((1..1400).all(|i| s.due(i) >= s.due(i - 1)));
        let bounds = s.bounds();
        assert_eq!(bounds[1], ("burst".to_owned(), 2.0, 3.0));
    }

    #[test]
    fn bad_phases_are_refused() {
        assert!(Schedule::new(vec![]).is_err());
        assert!(Schedule::new(vec![Phase::new("x", 0.0, 1.0)]).is_err());
        assert!(Schedule::new(vec![Phase::new("x", 10.0, f64::NAN)]).is_err());
    }

    #[test]
    fn exponential_think_has_the_asked_mean_and_spread() {
        let think = Think::Exponential(Duration::from_millis(1000));
        let n = 20_000;
        let pauses: Vec<f64> = (0..n).map(|i| secs(think.pause(i))).collect();
        let mean = pauses.iter().sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        // P(X > mean) = 1/e for an exponential.
        let above = pauses.iter().filter(|&&p| p > 1.0).count() as f64 / n as f64;
        assert!((above - (-1f64).exp()).abs() < 0.02, "share above the mean {above}");
        assert!(pauses.iter().all(|&p| (0.0..=10.0).contains(&p)));
        assert_eq!(Think::Fixed(Duration::from_millis(5)).pause(7), Duration::from_millis(5));
    }
}
