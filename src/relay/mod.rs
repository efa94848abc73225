//! The service layer between the HTTP routes and the upstreams: forwarding new tasks with
//! failover, reading upstream answers, and applying upstream reports to our tasks.

pub mod callback;
pub mod error;
pub mod lifecycle;
pub mod routing;
pub mod submit;
pub mod translate;
pub mod upload;
pub mod view;

pub use submit::{Submission, submit_modal, submit_task};
pub use view::TaskView;
