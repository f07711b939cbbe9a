//! `scanq`: the core shared by `scanq-api` and `scanq-worker`.
//!
//! | module | owns |
//! |---|---|
//! | [`domain`] | identifiers, job states, priorities, error kinds, the job document |
//! | [`engagement`] | a tenant's written permission to test: targets, tools, windows, approvals (DESIGN §14) |
//! | [`validate`] | typed targets and scope policy, argument policy (DESIGN §4) |
//! | [`breaker`] | the per-tool circuit breaker shared by the fleet (Lua + wrapper) |
//! | [`catalog`] | the tool catalog (built-in default + operator file) |
//! | [`request`] | a submit body turned into a checked `JobSpec`; typed JSON fields ([`request::fields`]) |
//! | [`keys`] | every Redis key name |
//! | [`scripts`] | the Lua scripts and their typed wrappers |
//! | [`queue`] | the queue as the API uses it (submit, read, wait, cancel, list) |
//! | [`stats`] | fleet-wide numbers: counts, queue depth and age, percentiles, live workers, zones |
//! | [`config`] | one typed configuration |
//! | [`reload`] | the reloadable set (catalog, scope, …) and its SIGHUP swap |
//! | [`boot`] | the binaries' start-up: config, `--print-config`, telemetry, catalog, shutdown signal |
//! | [`telemetry`] | logging set-up |
//! | [`tokens`] | minting API tokens: scopes, format, hash, the tokens-file entry |
//! | [`metrics`] | Prometheus metric definitions |
//! | [`nmap`] | nmap XML results and live progress |
//! | [`untrusted`] | cleaning and fencing text the scanned hosts control |

pub mod boot;
pub mod breaker;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod engagement;
pub mod keys;
pub mod metrics;
pub mod nmap;
pub mod queue;
pub mod reload;
pub mod request;
pub mod schedule;
pub mod scripts;
pub mod stats;
pub mod telemetry;
pub mod tokens;
pub mod untrusted;
pub mod validate;
pub mod webhook;
