//! Client notifications (SPEC 5): the signature a receiver checks, the guard that keeps
//! hooks out of private networks, and the HTTP client that sends them. What is sent, and
//! when, is the notifier worker's (`workers::notifier`); what is queued, the store's.

pub mod address;
pub mod sender;
pub mod signature;

pub use sender::HookClient;
