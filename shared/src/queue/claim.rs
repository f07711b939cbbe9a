//! The worker's claim step across tools and their partitions, and how a partitioned tool's
//! partitions follow the one fleet-wide breaker (docs/scaling.md).
//!
//! A tool's breaker lives in its home partition (`{T}`), and no script may touch two hash tags.
//! The home partition's claim and completion consult and record the breaker atomically, as for
//! an unpartitioned tool. The other partitions are *gated* by the worker:
//! - a claim there carries the home breaker's answer: `closed:<generation>` when the home claim
//!   of the last second left it closed, else the answer of an explicit admission on the home
//!   breaker (`Breaker::admit`): allow, a probe (one job, which holds the probe slot; released if
//!   no job was there), or a refusal (the tool is left alone until the breaker may admit);
//! - a completion there records nothing itself; its reply says, per job, the generation and
//!   probe, and the worker reports the outcome to the home breaker (`Breaker::record`). A plain
//!   success on a clean, closed breaker changes nothing and is not reported.
//!
//! The check and the start are therefore not one atomic step outside the home partition: a
//! breaker that trips while a gated claim is in flight may still see the jobs of that one claim
//! start (at most one claim step per worker), as if they had started just before the trip.

use std::time::{Duration, Instant};

use super::{ClaimRound, Consumer, QueueError, StartedJob};
use crate::breaker::{Admission, Outcome, TripMode};
use crate::domain::JobId;
use crate::scripts::{BreakerArgs, Completed, Completion};

/// How long a home breaker read by a claim stands for the other partitions.
const HOME_FRESH: Duration = Duration::from_secs(1);

impl Consumer {
    /// One claim step for up to `free` jobs across the worker's tools (its slots not running a
    /// job), starting with the tool `round` points at; a partitioned tool's partitions are
    /// visited in turn (starting where `round` points), each asked for its share of what is
    /// still free.
    ///
    /// The worker's standing offers (docs/queue.md "Direct start") are settled here, each by
    /// the claim in its tool's home partition, whatever else this step does. Until then each
    /// keeps one of the free slots for the job an enqueue may have started on it: the claim
    /// that settles an offer may use that slot (claim.lua counts a job started on the offer
    /// among those it was asked for).
    pub async fn claim(&self, free: usize, round: u64) -> Result<ClaimRound, QueueError> {
        let mut out = ClaimRound::default();
        let n = self.tools.len();
        if n == 0 || free == 0 {
            return Ok(out);
        }
        out.drained = true;
        let mut free = free;
        let mut reserved = self.offers_standing();
        let mut con = self.pool.get().await?;
        for i in 0..n {
            let t = &self.tools[(round as usize + i) % n];
            let parts = t.parts.len();
            let mut offer = self.take_offer(&t.name);
            for k in 0..parts {
                let p = (round as usize + k) % parts;
                let settles = offer && p == 0;
                // What this claim may fill: the free slots less those kept by other offers.
                let room = free.saturating_sub(reserved - usize::from(settles));
                if room == 0 {
                    // Not asked: it may hold jobs.
                    out.drained = false;
                    break;
                }
                if self
                    .disabled
                    .lock()
                    .expect("disabled lock")
                    .contains(&t.name)
                    || self.open.is_open(t.name.as_str()).is_some()
                {
                    break;
                }
                offer &= !settles;
                let mut want = room.div_ceil(parts - k);
                let (gate, probe) = if p == 0 {
                    (String::new(), None)
                } else {
                    match self.gate(&mut con, t, round, p).await? {
                        Some(g) => g,
                        None => continue,
                    }
                };
                if probe.is_some() {
                    want = 1;
                }
                let claimed = self
                    .claim_in(&mut con, t, p, (want, round), &gate, settles)
                    .await?;
                reserved -= usize::from(settles);
                out.drained &= claimed.drained;
                if claimed.parked > 0 {
                    out.parked.push((t.name.clone(), claimed.parked));
                }
                if let Some(home) = claimed.home.clone() {
                    self.home
                        .lock()
                        .expect("home lock")
                        .insert(t.name.clone(), (Instant::now(), home));
                }
                for tr in &claimed.transitions {
                    if let Ok(tr) = serde_json::from_str(tr) {
                        out.transitions.push((t.name.clone(), tr));
                    }
                }
                if claimed.retry_after_ms > 0 {
                    self.open
                        .note_rejected(t.name.as_str(), claimed.retry_after_ms);
                    out.refused.push(t.name.clone());
                }
                if let Some((probe, generation)) = probe
                    && claimed.jobs.is_empty()
                {
                    // No job there to probe with: give the slot back.
                    self.breakers
                        .record(
                            &mut con,
                            &t.parts[0].breaker_keys(),
                            &t.breaker,
                            None,
                            generation,
                            Outcome::Ignored,
                            &self.id,
                            &probe,
                            "",
                        )
                        .await?;
                }
                free = free.saturating_sub(claimed.jobs.len());
                if !claimed.jobs.is_empty() && !self.replicated(&mut con, &t.parts[p]).await {
                    self.hand_back_unconfirmed(t, &claimed.jobs).await;
                    continue;
                }
                if claimed.handed > 0 {
                    out.handed.push((t.name.clone(), claimed.handed));
                }
                self.collect(t, claimed.jobs, &mut out.started);
            }
            if offer {
                // The step did not reach the home partition (no room left, or the tool is left
                // alone): the offer is settled there alone; a job started on it takes its slot.
                let handed = self.settle(&mut con, t, round).await?;
                reserved -= 1;
                free = free.saturating_sub(handed.len());
                if !handed.is_empty() {
                    out.handed.push((t.name.clone(), handed.len()));
                }
                self.collect(t, handed, &mut out.started);
            }
        }
        Ok(out)
    }

    /// `claim.lua` in partition `p` of `t` for up to `want` jobs, through `gate`; `settles`:
    /// this worker's offer there is settled in the same call.
    async fn claim_in(
        &self,
        con: &mut super::Connection,
        t: &super::consumer::ToolQueue,
        p: usize,
        (want, round): (usize, u64),
        gate: &str,
        settles: bool,
    ) -> Result<crate::scripts::Claimed, QueueError> {
        let breaker = BreakerArgs {
            settings_json: &t.breaker_json,
            held_error_json: &self.held_error_json,
        };
        Ok(self
            .scripts
            .claim(
                con,
                &t.parts[p],
                &self.settings,
                &self.id,
                want,
                round,
                t.name.as_str(),
                breaker,
                gate,
                self.capabilities.raw_sockets,
                t.group_cap,
                settles,
            )
            .await?)
    }

    /// Settles this worker's offer in `t`'s home partition and nothing else (a claim for no
    /// job): the job an enqueue started on it, if one did.
    async fn settle(
        &self,
        con: &mut super::Connection,
        t: &super::consumer::ToolQueue,
        round: u64,
    ) -> Result<Vec<crate::scripts::ClaimedJob>, QueueError> {
        Ok(self.claim_in(con, t, 0, (0, round), "", true).await?.jobs)
    }

    /// Settles every offer of this worker that may stand (a stopping worker): the jobs
    /// enqueues started on them.
    pub async fn settle_offers(&self, round: u64) -> Result<Vec<StartedJob>, QueueError> {
        let mut out = Vec::new();
        if self.offers_standing() == 0 {
            return Ok(out);
        }
        let mut con = self.pool.get().await?;
        for t in &self.tools {
            if self.take_offer(&t.name) {
                let handed = self.settle(&mut con, t, round).await?;
                self.collect(t, handed, &mut out);
            }
        }
        Ok(out)
    }

    /// The jobs a claim of `t` gave, as started jobs of this worker.
    pub(super) fn collect(
        &self,
        t: &super::consumer::ToolQueue,
        jobs: Vec<crate::scripts::ClaimedJob>,
        started: &mut Vec<StartedJob>,
    ) {
        for job in jobs {
            let Some(id) = JobId::from_ref(&t.name, &self.zone, &job.job_ref) else {
                tracing::error!(job = %job.job_ref, "Claimed a job with a malformed ref");
                continue;
            };
            started.push(StartedJob {
                id,
                needs_raw: job.needs_raw,
                job,
            });
        }
    }

    /// Hands back jobs whose claim no replica confirmed: were the primary lost now, a promoted
    /// replica would hand them out again. The attempt does not count, and the tool is left
    /// alone for a second, as for a refusing breaker.
    async fn hand_back_unconfirmed(
        &self,
        t: &super::consumer::ToolQueue,
        jobs: &[crate::scripts::ClaimedJob],
    ) {
        tracing::warn!(
            tool = %t.name,
            jobs = jobs.len(),
            "Claim not confirmed by enough replicas; handing the jobs back"
        );
        self.open.note_rejected(t.name.as_str(), 1000);
        let back: Vec<Completion> = jobs
            .iter()
            .map(|j| Completion {
                job_ref: j.job_ref.clone(),
                fence: j.fence,
                outcome: crate::domain::Outcome::Handback,
                result_json: String::new(),
                error_json: String::new(),
                delay_ms: 0,
                verdict: crate::domain::Verdict::Ignored,
                breaker_reason: String::new(),
            })
            .collect();
        if let Err(err) = self.complete(&t.name, &back).await {
            tracing::warn!(error = %err, "Handing back failed; the jobs return when their leases lapse");
        }
    }

    /// The gate for a claim in partition `p` (> 0) of `t`: `None` to skip it this step, else the
    /// gate string for `claim.lua` and, for a probe, its id and generation.
    async fn gate(
        &self,
        con: &mut super::Connection,
        t: &super::consumer::ToolQueue,
        round: u64,
        p: usize,
    ) -> Result<Option<(String, Option<(String, u64)>)>, QueueError> {
        let known = self
            .home
            .lock()
            .expect("home lock")
            .get(&t.name)
            .filter(|(at, h)| {
                at.elapsed() < HOME_FRESH && matches!(h.state.as_str(), "closed" | "disabled")
            })
            .map(|(_, h)| h.generation);
        if let Some(generation) = known {
            return Ok(Some((format!("closed:{generation}"), None)));
        }
        let probe = format!("{}:{round}:{p}", self.id);
        let (admission, transition) = self
            .breakers
            .admit_traced(
                con,
                &t.parts[0].breaker_keys(),
                &t.breaker,
                None,
                &self.id,
                &probe,
            )
            .await?;
        if let Some(tr) = transition {
            self.note_transition(&t.name, &tr);
        }
        Ok(match admission {
            Admission::Allow { generation } => Some((format!("closed:{generation}"), None)),
            Admission::Probe { generation } => Some((
                format!("probe:{probe}:{generation}"),
                Some((probe, generation)),
            )),
            Admission::Reject { retry_after_ms } => {
                self.open
                    .note_rejected(t.name.as_str(), retry_after_ms.clamp(1, 5000));
                None
            }
        })
    }

    /// Reports the outcomes a gated partition's completion owes to the home breaker.
    pub(super) async fn report_to_home(
        &self,
        con: &mut super::Connection,
        t: &super::consumer::ToolQueue,
        batch: &[Completion],
        done: &mut Completed,
    ) -> Result<(), QueueError> {
        let clean = self
            .home
            .lock()
            .expect("home lock")
            .get(&t.name)
            .is_some_and(|(at, h)| at.elapsed() < HOME_FRESH && h.clean);
        let rate = t.breaker.mode == TripMode::Rate;
        for (i, owed) in done.owed.clone().into_iter().enumerate() {
            let Some((generation, probe)) = owed else {
                continue;
            };
            let c = &batch[i];
            let outcome: Outcome = c.verdict.as_str().parse().unwrap_or(Outcome::Ignored);
            let unchanged = probe.is_empty()
                && (outcome == Outcome::Ignored || (outcome == Outcome::Success && clean && !rate));
            if unchanged {
                continue;
            }
            let (label, tr) = self
                .breakers
                .record(
                    con,
                    &t.parts[0].breaker_keys(),
                    &t.breaker,
                    None,
                    generation,
                    outcome,
                    &self.id,
                    &probe,
                    &c.breaker_reason,
                )
                .await?;
            done.breaker[i] = label.as_str().parse().ok();
            if let Some(tr) = tr {
                done.transitions
                    .push(serde_json::to_string(&tr).expect("serializable"));
            }
        }
        Ok(())
    }
}
