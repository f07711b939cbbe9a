//! The safe-scan contract's validation layer: what a scan may target and which tool arguments
//! it may carry. Pure functions over parsed types, no I/O except the resolver that the worker
//! uses to re-check a hostname just before a run.
//!
//! - [`target`]: parsing a `target` string into a canonical [`Target`]; [`targets`]: a list of
//!   them ([`TargetList`]), and its cut into the chunks of a big scan.
//! - [`scope`]: the operator's [`TargetPolicy`] (allow/deny lists, special ranges, CIDR cap).
//! - [`groups`]: [`target_group`], the network (or name) a target counts in for politeness.
//! - [`resolve`]: [`resolve_list`], which gives the tool the checked addresses of a target list.
//! - [`args`] with [`values`], [`script`] and `forbidden`: the catalog's [`ArgPolicy`] and the
//!   parser that turns an `args` string into normalized [`ToolArgs`].
//! - [`url`]: where a webhook may go: the operator's allow-list, a subscription URL, the check
//!   of every address a delivery connects to.
//! - [`zones`]: the [`ZoneMap`] that places a target in its zone (DESIGN §13), cuts a list by
//!   zone, and re-checks the worker's resolved addresses.
//! - [`adversarial`]: a table of hostile inputs that every layer (this one, HTTP, MCP) must refuse.
//!
//! Every refusal is a [`ValidationError`] naming the field (`target` or `args`) and a hint.

pub mod adversarial;
pub mod args;
mod error;
mod forbidden;
pub mod groups;
pub mod resolve;
pub mod scope;
pub mod script;
pub mod target;
pub mod targets;
pub mod text;
pub mod url;
pub mod values;
pub mod zones;

pub use args::{ArgContext, ArgPolicy, FlagSpec, ToolArgs};
pub use error::ValidationError;
pub use groups::target_group;
pub use resolve::{
    BoxFuture, Resolver, StaticResolver, SystemResolver, resolve_for_scan, resolve_list,
};
pub use scope::{Narrowing, TargetPolicy};
pub use script::ScriptPolicy;
pub use target::{Hostname, Target};
pub use targets::TargetList;
pub use values::ValueType;
pub use zones::ZoneMap;
