//! TriageAgent: greeting and numbered menu from tenant config; an option leads to a queue or
//! the AI; an invalid answer repeats the menu; after N invalid answers the default queue.

use crate::domain::{MenuOption, OutboundContent};
use crate::tenant::{Route, TenantPolicy};
use actix::prelude::*;
use std::sync::Arc;

/// The triage bot of one tenant.
pub struct TriageAgent {
    policy: Arc<TenantPolicy>,
}

impl TriageAgent {
    /// A triage agent following the tenant's menu.
    pub fn new(policy: Arc<TenantPolicy>) -> Self {
        Self { policy }
    }

    fn menu(&self, prefix: Option<&str>) -> OutboundContent {
        let triage = &self.policy.triage;
        let mut body = String::new();
        if let Some(p) = prefix {
            body.push_str(p);
            body.push_str("\n\n");
        }
        body.push_str(&triage.greeting);
        for (i, opt) in triage.options.iter().enumerate() {
            body.push_str(&format!("\n{}. {}", i + 1, opt.label));
        }
        let options = triage
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| MenuOption { id: (i + 1).to_string(), title: o.label.clone() })
            .collect();
        OutboundContent::Menu { body, options }
    }

    fn decide(&self, msg: &Triage) -> TriageDecision {
        let Some(input) = msg.input.as_deref() else {
            return TriageDecision::ShowMenu(self.menu(None));
        };
        let options = &self.policy.triage.options;
        let chosen = input
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| options.get(i))
            .or_else(|| options.iter().find(|o| o.label.eq_ignore_ascii_case(input)));
        match chosen {
            Some(opt) => TriageDecision::Chosen(opt.route.clone()),
            None if msg.invalid_attempts + 1 >= self.policy.triage.max_invalid => {
                TriageDecision::Exhausted { queue: self.policy.default_queue.clone() }
            }
            None => TriageDecision::Invalid { repeat: self.menu(Some(&self.policy.triage.invalid_message)) },
        }
    }
}

impl Actor for TriageAgent {
    type Context = Context<Self>;
}

/// Asks what to do with a customer's answer (or, with no input, for the opening menu).
#[derive(Message, Debug)]
#[rtype(result = "TriageDecision")]
pub struct Triage {
    /// The customer's answer (text or chosen option id); `None` to open the menu.
    pub input: Option<String>,
    /// Invalid answers so far.
    pub invalid_attempts: u8,
}

/// What the conversation should do.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub enum TriageDecision {
    /// Send the menu.
    ShowMenu(OutboundContent),
    /// An option was chosen.
    Chosen(Route),
    /// Not an option: send this (notice + menu again).
    Invalid {
        /// What to send.
        repeat: OutboundContent,
    },
    /// Too many invalid answers: go to this queue.
    Exhausted {
        /// The default queue.
        queue: String,
    },
}

impl Handler<Triage> for TriageAgent {
    type Result = TriageDecision;

    fn handle(&mut self, msg: Triage, _: &mut Context<Self>) -> TriageDecision {
        self.decide(&msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(agent: &Addr<TriageAgent>, input: Option<&str>, invalid: u8) -> Request<TriageAgent, Triage> {
        agent.send(Triage { input: input.map(str::to_owned), invalid_attempts: invalid })
    }

    #[actix::test]
    async fn menu_options_lead_to_routes_and_invalid_input_repeats_then_gives_up() {
        let policy = Arc::new(TenantPolicy::example("t", Route::Triage));
        let agent = TriageAgent::new(policy).start();
        let TriageDecision::ShowMenu(OutboundContent::Menu { body, options }) = ask(&agent, None, 0).await.unwrap()
        else {
            panic!("expected a menu");
        };
        assert!(body.contains("1. Vendas") && body.contains("3. Assistente virtual"), "{body}");
        assert_eq!(options.len(), 3);
        assert_eq!(ask(&agent, Some("1"), 0).await.unwrap(), TriageDecision::Chosen(Route::Queue("sales".into())));
        assert_eq!(
            ask(&agent, Some("suporte"), 0).await.unwrap(),
            TriageDecision::Chosen(Route::Queue("support".into()))
        );
        assert_eq!(ask(&agent, Some("3"), 0).await.unwrap(), TriageDecision::Chosen(Route::Ai));
        let TriageDecision::Invalid { repeat } = ask(&agent, Some("9"), 0).await.unwrap() else { panic!() };
        assert!(repeat.body().starts_with("Opção inválida.") && repeat.body().contains("2. Suporte"));
        assert_eq!(
            ask(&agent, Some("banana"), 1).await.unwrap(),
            TriageDecision::Exhausted { queue: "support".into() }
        );
    }
}
