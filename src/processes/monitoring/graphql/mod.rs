//! Monitoring integrations, the `raiseAlert` mutation, the alert behind an
//! incident, and the delivery log (`ingestLog`).

mod alert;
mod delivery;
mod enums;
mod inputs;
mod integration;
mod mutation;
mod query;

pub use alert::*;
pub use delivery::*;
pub use enums::*;
pub use inputs::*;
pub use integration::*;
pub use mutation::*;
pub use query::*;
