//! The keys of the programs wing: schedules (`{sched}`) and webhooks (`{hook}`), each family
//! under its own hash tag so every script of a family touches one cluster slot.

use super::Keys;
use crate::domain::TenantId;

impl Keys {
    /// The engagements' keys, all under the hash tag `{eng}`.
    pub fn eng(&self) -> EngKeys {
        EngKeys::new(self.prefix())
    }

    /// The schedules' keys, all under the hash tag `{sched}`.
    pub fn sched(&self) -> SchedKeys {
        SchedKeys::new(self.prefix())
    }
}

/// The schedules' keys (`P:{sched}:…`, one cluster slot; table in `schedule/store.rs`).
#[derive(Debug, Clone)]
pub struct SchedKeys {
    base: String,
}

impl SchedKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            base: format!("{prefix}:{{sched}}:"),
        }
    }

    /// The schedule hash of due-zset member `<tenant>/<id>`.
    pub fn def(&self, member: &str) -> String {
        format!("{}def:{member}", self.base)
    }
    /// Every due schedule, score = when it is due.
    pub fn due(&self) -> String {
        format!("{}due", self.base)
    }
    /// The tenant's schedule ids, score = created ms.
    pub fn list(&self, tenant: &TenantId) -> String {
        format!("{}list:{tenant}", self.base)
    }
    /// The schedule's runs (correlation IDs), score = slot ms.
    pub fn runs(&self, member: &str) -> String {
        format!("{}runs:{member}", self.base)
    }
}

/// The engagements' keys (DESIGN §14), under the hash tag `{eng}`:
///
/// | key | type | what |
/// |---|---|---|
/// | `P:{eng}:def:<tenant>/<id>` | hash | `def` (the checked engagement, JSON), `created_ms`, `updated_ms` |
/// | `P:{eng}:list:<tenant>` | zset | the tenant's engagement ids, score = created ms |
#[derive(Debug, Clone)]
pub struct EngKeys {
    base: String,
}

impl EngKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            base: format!("{prefix}:{{eng}}:"),
        }
    }

    /// One engagement of a tenant.
    pub fn def(&self, tenant: &TenantId, id: &str) -> String {
        format!("{}def:{tenant}/{id}", self.base)
    }

    /// The tenant's engagement ids.
    pub fn list(&self, tenant: &TenantId) -> String {
        format!("{}list:{tenant}", self.base)
    }
}

/// The webhook keys ([`crate::webhook`]), all under the hash tag `{hook}` (one cluster slot,
/// so every webhook script's `KEYS` live together; no webhook script touches another tag):
///
/// | key | type | what |
/// |---|---|---|
/// | `P:{hook}:sub:<tenant>/<id>` | hash | `url`, `events` (comma-separated), `schedule_id`, `description`, `secret`, `created_ms` |
/// | `P:{hook}:subs:<tenant>` | zset | the tenant's subscription ids, score = created ms |
/// | `P:{hook}:outbox:<tenant>` | zset | the tenant's deliveries, member `<tenant>/<sub>/<event id>`, score = next attempt ms (a lease ahead while one is attempted) |
/// | `P:{hook}:ring` | zset | tenants with deliveries in their outbox, score = when the tenant may next be served; the claim takes the lowest (round-robin) |
/// | `P:{hook}:inflight:<tenant>` | zset | the tenant's deliveries being attempted, score = lease expiry ms |
/// | `P:{hook}:inflight` | zset | every delivery being attempted (the fleet-wide bound), score = lease expiry ms |
/// | `P:{hook}:d:<member>` | hash | one delivery: `event`, `body`, `attempts`, `first_ms`, `done`; kept 48 h after it ends (so a re-emitted event is not sent twice) |
/// | `P:{hook}:log:<tenant>/<sub>` | list | the subscription's newest attempts (JSON) |
#[derive(Debug, Clone)]
pub struct HookKeys {
    base: String,
}

impl HookKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            base: format!("{prefix}:{{hook}}:"),
        }
    }

    /// A subscription by `<tenant>/<id>`.
    pub fn sub(&self, sub_member: &str) -> String {
        format!("{}sub:{sub_member}", self.base)
    }

    pub fn subs(&self, tenant: &TenantId) -> String {
        format!("{}subs:{tenant}", self.base)
    }

    pub fn outbox(&self, tenant: &str) -> String {
        format!("{}outbox:{tenant}", self.base)
    }

    pub fn ring(&self) -> String {
        format!("{}ring", self.base)
    }

    /// The one outbox of every tenant before per-tenant outboxes (read once, to adopt what it
    /// still holds).
    pub fn legacy_outbox(&self) -> String {
        format!("{}outbox", self.base)
    }

    pub fn in_flight(&self, tenant: &str) -> String {
        format!("{}inflight:{tenant}", self.base)
    }

    pub fn in_flight_all(&self) -> String {
        format!("{}inflight", self.base)
    }

    /// A delivery by its outbox member `<tenant>/<sub>/<event id>`.
    pub fn delivery(&self, member: &str) -> String {
        format!("{}d:{member}", self.base)
    }

    /// A subscription's delivery log by `<tenant>/<id>`.
    pub fn log(&self, sub_member: &str) -> String {
        format!("{}log:{sub_member}", self.base)
    }
}
