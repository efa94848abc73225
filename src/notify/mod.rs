//! Client notifications (SPEC 5): the signature a receiver checks and the HTTP client that
//! sends them (through the [`crate::net_guard`], which keeps hooks out of private networks). What is sent, and
//! when, is the notifier worker's (`workers::notifier`); what is queued, the store's.

pub mod sender;
pub mod signature;

pub use sender::HookClient;
