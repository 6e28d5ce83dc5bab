//! Traffic measurement in the service (SPEC 9): what the scenes measure (line crossings,
//! movements, lane passes and speeds) binned by the wall clock, danger alerts as events, both
//! kept in the database (the `store` crate) and shown live in `trafficStats`.
//!
//! - [`tally`]: one camera's measures in bins (pure);
//! - [`events`]: alert episodes as event rows (pure);
//! - [`window`]: one camera's measures since the backend was last told (pure);
//! - [`sink`]: the frame sink that feeds them all, the metrics and the database writer.

pub mod events;
pub mod sink;
pub mod tally;
pub mod window;
