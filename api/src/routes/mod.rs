//! HTTP routes, one module per resource, each exporting `router()`.

pub mod breakers;
pub mod events;
pub mod health;
pub mod jobs;
pub mod tools;
