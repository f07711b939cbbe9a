//! (d) Memory per queued job: with no worker running, N `noop` jobs are posted through the
//! API exactly as in the submit phase; Redis's `used_memory` before and after, divided by N, is
//! what one queued job costs. The keys are then found by `SCAN` (nothing here assumes the data
//! model, which changes), grouped into kinds by generalising their names (`<tenant>`, `<cid>`,
//! `{T}` for the tool), and `MEMORY USAGE` of sample keys of each kind says where the bytes go,
//! amortised over the jobs in Redis.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::stack::{Phase, Redis};
use crate::usage::memory_info;

/// At most this many keys of one kind are sized with `MEMORY USAGE` (spread over the kind).
const SAMPLES_PER_KIND: usize = 200;

/// One kind of key, e.g. every `P:{T}:job:<tenant>/<cid>`.
#[derive(Debug, Clone)]
pub struct KeyKind {
    /// The key name generalised: prefix `P`, tool `{T}`, `<tenant>`, `<cid>`, `<n>`.
    pub pattern: String,
    /// What it is, for the kinds the bench knows; empty otherwise.
    pub label: &'static str,
    pub redis_type: String,
    pub keys: u64,
    pub sampled: u64,
    /// Mean `MEMORY USAGE` of the sampled keys.
    pub mean_bytes: f64,
    /// `mean_bytes × keys / jobs in Redis`.
    pub bytes_per_job: f64,
}

/// What the memory phase measured.
#[derive(Debug, Clone)]
pub struct MemoryResult {
    /// Jobs posted between the two `used_memory` readings.
    pub jobs: u64,
    /// All jobs in Redis when the keys were sized (the warm-up's too).
    pub jobs_in_redis: u64,
    pub used_memory_before: u64,
    pub used_memory_after: u64,
    pub dataset_before: u64,
    pub dataset_after: u64,
    /// `(used_memory_after − used_memory_before) / jobs`.
    pub bytes_per_job: f64,
    /// Busiest first.
    pub kinds: Vec<KeyKind>,
}

impl MemoryResult {
    /// Bytes per job that `MEMORY USAGE` of the keys does not account for (the keyspace's
    /// expiry table, allocator rounding, client buffers).
    pub fn unattributed_per_job(&self) -> f64 {
        self.bytes_per_job - self.kinds.iter().map(|k| k.bytes_per_job).sum::<f64>()
    }
}

/// The `INFO memory` figures the phase compares.
pub struct Reading {
    pub used: u64,
    pub dataset: u64,
}

pub async fn read(redis: &Redis) -> anyhow::Result<Reading> {
    let info = memory_info(&mut redis.con().await?).await?;
    let field = |k: &str| {
        info.get(k)
            .copied()
            .with_context(|| format!("INFO memory has no {k}"))
    };
    Ok(Reading {
        used: field("used_memory")?,
        dataset: field("used_memory_dataset")?,
    })
}

impl MemoryResult {
    pub fn new(
        jobs: u64,
        jobs_in_redis: u64,
        before: &Reading,
        after: &Reading,
        kinds: Vec<KeyKind>,
    ) -> Self {
        Self {
            jobs,
            jobs_in_redis,
            used_memory_before: before.used,
            used_memory_after: after.used,
            dataset_before: before.dataset,
            dataset_after: after.dataset,
            bytes_per_job: (after.used as f64 - before.used as f64) / jobs.max(1) as f64,
            kinds,
        }
    }
}

/// Turns a key of the phase into its kind's pattern.
struct Generaliser {
    /// `<prefix>:`
    prefix: String,
    /// `<prefix>:{<tool>}:`
    tool_prefix: String,
    tenant: String,
}

impl Generaliser {
    fn new(phase: &Phase) -> Self {
        let keys = phase.keys();
        Self {
            prefix: format!("{}:", keys.prefix()),
            tool_prefix: keys.tool(&phase.tool()).job_prefix(),
            tenant: scanq::domain::TenantId::default_tenant().to_string(),
        }
    }

    fn pattern(&self, key: &str) -> String {
        let (head, rest) = if let Some(rest) = key.strip_prefix(&self.tool_prefix) {
            ("P:{T}:", rest)
        } else if let Some(rest) = key.strip_prefix(&self.prefix) {
            ("P:", rest)
        } else {
            ("", key)
        };
        let rest: Vec<String> = rest.split(':').map(|s| self.segment(s)).collect();
        format!("{head}{}", rest.join(":"))
    }

    fn segment(&self, s: &str) -> String {
        if s == self.tenant {
            "<tenant>".into()
        } else if let Some(id) = s
            .strip_prefix(&self.tenant)
            .and_then(|r| r.strip_prefix('/'))
        {
            format!("<tenant>/{}", generic_id(id))
        } else {
            generic_id(s)
        }
    }
}

/// `<cid>` for a UUID (the correlation IDs the API makes), `<n>` for a number, else as is.
fn generic_id(s: &str) -> String {
    let uuid = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if uuid {
        "<cid>".into()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        "<n>".into()
    } else {
        s.to_owned()
    }
}

/// Names for the kinds the issue asks about; a kind not listed is shown by its pattern only.
fn label(pattern: &str) -> &'static str {
    match pattern {
        "P:{T}:job:<tenant>/<cid>" => "job hash",
        "P:{T}:ev:<tenant>/<cid>" => "job event stream",
        "P:idx:<tenant>:<cid>" => "correlation-ID index",
        "P:jobs:<tenant>" => "tenant job listing",
        "P:{T}:q:high" => "ready stream (high)",
        "P:{T}:q:normal" => "ready stream (normal)",
        "P:{T}:q:low" => "ready stream (low)",
        "P:{T}:backlog:<tenant>" => "fair-share backlog",
        "P:tenant:<tenant>:queued" => "tenant's queued jobs",
        "P:{T}:counts" => "counts per state",
        _ => "",
    }
}

/// Every key of the phase by kind, each kind sized from up to `SAMPLES_PER_KIND` keys.
pub async fn breakdown(
    redis: &Redis,
    phase: &Phase,
    jobs_in_redis: u64,
) -> anyhow::Result<Vec<KeyKind>> {
    let g = Generaliser::new(phase);
    let mut con = redis.con().await?;
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let pattern = format!("{}*", g.prefix);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        for k in keys {
            by_kind.entry(g.pattern(&k)).or_default().push(k);
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut kinds = vec![];
    for (pattern, keys) in by_kind {
        let step = keys.len().div_ceil(SAMPLES_PER_KIND).max(1);
        let sample: Vec<&String> = keys.iter().step_by(step).collect();
        let redis_type: String = redis::cmd("TYPE")
            .arg(sample[0])
            .query_async(&mut con)
            .await?;
        let mut pipe = redis::pipe();
        for k in &sample {
            // SAMPLES 0: every element of an aggregate, not an estimate from five.
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(*k)
                .arg("SAMPLES")
                .arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut con).await?;
        // A key that expired or was removed between SCAN and MEMORY USAGE has no size.
        let sized: Vec<u64> = sizes.into_iter().flatten().collect();
        let mean = if sized.is_empty() {
            0.0
        } else {
            sized.iter().sum::<u64>() as f64 / sized.len() as f64
        };
        let total = mean * keys.len() as f64;
        kinds.push(KeyKind {
            label: label(&pattern),
            pattern,
            redis_type,
            keys: keys.len() as u64,
            sampled: sized.len() as u64,
            mean_bytes: mean,
            bytes_per_job: total / jobs_in_redis.max(1) as f64,
        });
    }
    kinds.sort_by(|a, b| b.bytes_per_job.total_cmp(&a.bytes_per_job));
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Generaliser {
        Generaliser {
            prefix: "pfx:".into(),
            tool_prefix: "pfx:{noop}:".into(),
            tenant: "default".into(),
        }
    }

    #[test]
    fn per_job_keys_fall_into_one_kind_each() {
        let cid = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let g = g();

        assert_eq!(
            g.pattern(&format!("pfx:{{noop}}:job:default/{cid}")),
            "P:{T}:job:<tenant>/<cid>"
        );
        assert_eq!(
            g.pattern(&format!("pfx:{{noop}}:ev:default/{cid}")),
            "P:{T}:ev:<tenant>/<cid>"
        );
        assert_eq!(
            g.pattern(&format!("pfx:idx:default:{cid}")),
            "P:idx:<tenant>:<cid>"
        );
        assert_eq!(label("P:idx:<tenant>:<cid>"), "correlation-ID index");
    }

    #[test]
    fn shared_and_unknown_keys_keep_their_names() {
        let g = g();

        assert_eq!(g.pattern("pfx:jobs:default"), "P:jobs:<tenant>");
        assert_eq!(g.pattern("pfx:{noop}:q:normal"), "P:{T}:q:normal");
        assert_eq!(
            g.pattern("pfx:{noop}:backlog:default"),
            "P:{T}:backlog:<tenant>"
        );
        assert_eq!(g.pattern("pfx:worker:host-1:4711"), "P:worker:host-1:<n>");
        assert_eq!(g.pattern("pfx:something:new"), "P:something:new");
        assert_eq!(label("P:something:new"), "");
    }
}
