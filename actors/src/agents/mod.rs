//! The agents a conversation can be routed to: AI, triage menu, human queues.

pub mod ai;
pub mod queue;
pub mod triage;
