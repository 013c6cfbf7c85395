//! AiAgent: one per tenant and actor thread (see `hub`), the tenant's limits shared. Calls the
//! model through the `LlmClient` port behind a timeout, a circuit breaker and a governor rate
//! limit; when the model cannot answer it returns the tenant's fallback text plus a handoff to
//! the default queue, so a customer never meets silence.

use crate::breaker::CircuitBreaker;
use crate::metrics::HubMetrics;
use crate::ports::{LlmAction, LlmClient, LlmRequest, LlmResponse};
use crate::telemetry::{ModelCall, RateLimited};
use crate::tenant::TenantPolicy;
use actix::prelude::*;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Semaphore;

/// What the AI agents of one tenant share: its model's breaker, rate and concurrency limits.
#[derive(Clone)]
pub struct AiLimits {
    /// Shared with `/metrics`, which reports its state.
    breaker: Arc<Mutex<CircuitBreaker>>,
    limiter: Arc<DefaultDirectRateLimiter>,
    in_flight: Arc<Semaphore>,
}

impl AiLimits {
    /// The limits of `policy`'s tenant; its breaker is reported at `/metrics`.
    pub fn new(policy: &TenantPolicy, metrics: &HubMetrics) -> Self {
        let rate = NonZeroU32::new(policy.ai.rate_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let breaker = Arc::new(Mutex::new(CircuitBreaker::new(policy.ai.breaker_failures, policy.ai.breaker_cooldown)));
        metrics.series.watch_breaker(format!("llm:{}", policy.id), &breaker);
        Self {
            breaker,
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(rate))),
            in_flight: Arc::new(Semaphore::new(policy.ai.max_in_flight.max(1))),
        }
    }
}

/// An AI agent of one tenant.
pub struct AiAgent {
    policy: Arc<TenantPolicy>,
    llm: Option<Arc<dyn LlmClient>>,
    limits: AiLimits,
    metrics: Arc<HubMetrics>,
}

impl AiAgent {
    /// An agent using `llm` within `limits`, which the tenant's other agents share; `None` (no
    /// model configured) always falls back.
    pub fn new(
        limits: AiLimits,
        policy: Arc<TenantPolicy>,
        llm: Option<Arc<dyn LlmClient>>,
        metrics: Arc<HubMetrics>,
    ) -> Self {
        Self { policy, llm, limits, metrics }
    }

    /// The breaker (a panic elsewhere while it was held leaves it usable).
    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        self.limits.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fallback(&self, why: String) -> AiOutcome {
        HubMetrics::inc(&self.metrics.llm_fallbacks);
        tracing::warn!(tenant = %self.policy.id, reason = %why, "ai fallback");
        AiOutcome::fallback(&self.policy, &why)
    }
}

/// Why a model call produced no answer.
enum CallError {
    /// Our own limiter or concurrency bound held it past the timeout.
    Queued,
    /// The model did not answer in time.
    TimedOut,
    /// The model answered with an error.
    Model(crate::ports::LlmError),
}

impl Actor for AiAgent {
    type Context = Context<Self>;
}

/// Asks the model for the next turn of a conversation.
#[derive(Message, Debug)]
#[rtype(result = "AiOutcome")]
pub struct Generate(pub LlmRequest);

impl AiOutcome {
    /// The tenant's fallback: a polite message and a handoff to the default queue.
    pub fn fallback(policy: &TenantPolicy, why: &str) -> Self {
        Self {
            action: LlmAction::Handoff {
                queue: Some(policy.default_queue.clone()),
                reason: format!("ai unavailable: {why}"),
                message: Some(policy.ai.fallback_message.clone()),
            },
            prompt_tokens: 0,
            completion_tokens: 0,
            fallback: true,
        }
    }
}

/// The agent's answer: always something to do, never an error.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub struct AiOutcome {
    /// What to do.
    pub action: LlmAction,
    /// Prompt tokens used.
    pub prompt_tokens: u32,
    /// Completion tokens used.
    pub completion_tokens: u32,
    /// True when the fallback was used.
    pub fallback: bool,
}

impl AiAgent {
    /// One model call behind the breaker, the rate limit, the concurrency bound and the timeout.
    /// `Err` says, readably, why there is no answer.
    fn call(&mut self, request: LlmRequest) -> ResponseActFuture<Self, Result<LlmResponse, String>> {
        let Some(llm) = self.llm.clone() else {
            return Box::pin(fut::ready(Err("no model configured".into())));
        };
        if !self.breaker().try_acquire() {
            return Box::pin(fut::ready(Err("circuit breaker open".into())));
        }
        let metrics = self.metrics.clone();
        let limiter = self.limits.limiter.clone();
        let in_flight = self.limits.in_flight.clone();
        let timeout = self.policy.ai.timeout;
        let started = tokio::time::Instant::now();
        // Waiting for the limiter or a free slot counts against the timeout (a tenant over its
        // rate or concurrency gets the fallback rather than an unbounded wait), but it is our own
        // queueing, not the model failing: only the model call itself feeds the breaker.
        let call = async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let queued = tokio::time::timeout_at(deadline, async {
                limiter.until_ready().await;
                in_flight.acquire_owned().await
            })
            .await;
            let Ok(Ok(_slot)) = queued else { return Err(CallError::Queued) };
            // Counted once the call leaves: a turn the limit held back never reached the model.
            HubMetrics::inc(&metrics.llm_calls);
            match tokio::time::timeout_at(deadline, llm.complete(request)).await {
                Ok(result) => result.map_err(CallError::Model),
                Err(_) => Err(CallError::TimedOut),
            }
        };
        Box::pin(call.into_actor(self).map(move |result, act, _| act.judge(result, timeout, started.elapsed())))
    }

    /// What a finished call means for the breaker and the counters.
    fn judge(
        &mut self,
        result: Result<LlmResponse, CallError>,
        timeout: std::time::Duration,
        took: std::time::Duration,
    ) -> Result<LlmResponse, String> {
        let tenant = self.policy.id.as_str();
        let failed = match result {
            Err(CallError::Queued) => {
                RateLimited { scope: "llm", whose: tenant }.emit(&self.metrics);
                // The slowest turns of all: left out, the ai latency would hide the limit.
                self.metrics.series.agent_took("ai", took);
                self.breaker().release_trial();
                return Err(format!("more than {timeout:?} waiting for the tenant's model rate or concurrency limit"));
            }
            Ok(response) => {
                self.breaker().on_success();
                ModelCall::Answered { tenant, response: &response, took }.emit(&self.metrics);
                return Ok(response);
            }
            Err(CallError::Model(e)) => e.to_string(),
            Err(CallError::TimedOut) => format!("model timed out after {timeout:?}"),
        };
        self.breaker().on_failure();
        ModelCall::Failed { tenant, why: &failed, took }.emit(&self.metrics);
        Err(failed)
    }
}

impl Handler<Generate> for AiAgent {
    type Result = ResponseActFuture<Self, AiOutcome>;

    fn handle(&mut self, msg: Generate, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.call(msg.0).map(|result, act, _| match result {
            Ok(resp) => AiOutcome {
                action: resp.action,
                prompt_tokens: resp.prompt_tokens,
                completion_tokens: resp.completion_tokens,
                fallback: false,
            },
            Err(why) => act.fallback(why),
        }))
    }
}

/// Asks the model for a plain-text answer to a one-off task (e.g. summarising a conversation
/// for an agent). Same limits as conversation turns, but no fallback text: the caller gets why.
#[derive(Message, Debug)]
#[rtype(result = "Result<String, String>")]
pub struct Summarize(pub LlmRequest);

impl Handler<Summarize> for AiAgent {
    type Result = ResponseActFuture<Self, Result<String, String>>;

    fn handle(&mut self, msg: Summarize, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.call(msg.0).map(|result, _, _| match result?.action {
            LlmAction::Reply(text) => Ok(text),
            other => Err(format!("the model answered with an action instead of text: {other:?}")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{LlmError, LlmResponse, Speaker};
    use crate::tenant::Route;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    struct Flaky {
        calls: AtomicU32,
        fail: bool,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl LlmClient for Flaky {
        async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self.fail {
                return Err(LlmError::Unavailable("503".into()));
            }
            Ok(LlmResponse {
                action: LlmAction::Reply(format!("re: {}", req.history.last().unwrap().1)),
                prompt_tokens: 3,
                completion_tokens: 2,
            })
        }
    }

    fn request() -> Generate {
        Generate(LlmRequest {
            system_prompt: "s".into(),
            history: vec![(Speaker::Customer, "oi".into())],
            queues: vec![],
            tools: true,
        })
    }

    fn agent(fail: bool, delay: Duration) -> (Addr<AiAgent>, Arc<Flaky>, Arc<HubMetrics>) {
        let mut policy = TenantPolicy::example("t", Route::Ai);
        policy.ai.breaker_failures = 2;
        policy.ai.timeout = Duration::from_millis(500);
        let llm = Arc::new(Flaky { calls: AtomicU32::new(0), fail, delay });
        let metrics = Arc::new(HubMetrics::default());
        let limits = AiLimits::new(&policy, &metrics);
        (AiAgent::new(limits, Arc::new(policy), Some(llm.clone()), metrics.clone()).start(), llm, metrics)
    }

    #[actix::test]
    async fn answers_and_counts_tokens() {
        let (ai, _, metrics) = agent(false, Duration::ZERO);
        let out = ai.send(request()).await.unwrap();
        assert_eq!(out.action, LlmAction::Reply("re: oi".into()));
        assert!(!out.fallback);
        assert_eq!(metrics.llm_prompt_tokens.load(Ordering::Relaxed), 3);
    }

    #[actix::test]
    async fn model_down_falls_back_and_breaker_stops_calling() {
        let (ai, llm, _) = agent(true, Duration::ZERO);
        for _ in 0..4 {
            let out = ai.send(request()).await.unwrap();
            assert!(out.fallback);
            assert!(matches!(out.action, LlmAction::Handoff { queue: Some(ref q), .. } if q == "support"));
        }
        assert_eq!(llm.calls.load(Ordering::SeqCst), 2, "breaker opened after two failures");
    }

    #[actix::test]
    async fn slow_model_times_out_into_fallback() {
        let (ai, _, metrics) = agent(false, Duration::from_secs(3));
        let out = ai.send(request()).await.unwrap();
        assert!(out.fallback);
        assert_eq!(metrics.llm_errors.load(Ordering::Relaxed), 1);
    }
}
