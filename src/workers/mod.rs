//! Background work. Every loop takes a cancellation token and stops when it fires.

pub mod copier;
pub mod notifier;
pub mod poller;
