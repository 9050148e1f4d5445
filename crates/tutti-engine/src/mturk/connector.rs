//! The loop that keeps Mechanical Turk and the store in step (see the
//! module above for what one pass does).

use super::Settings;
use super::client::{Client, NewHit};
use super::question::{FIELD, answer_field, html_question};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tutti_domain::ids::UserId;
use tutti_domain::job::Crowd;
use tutti_domain::policy::Side;
use tutti_domain::role::Role;
use tutti_store::{
    CrowdHit, CrowdTask, Job, LeaseRequest, NewUser, Store, StoreError, SubmitOutcome,
    SubmitRequest, TaskLease, now,
};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// HITs posted.
    pub posted: u32,
    /// Answers entered into jobs.
    pub answers: u32,
    /// Answers approved (paid).
    pub approved: u32,
    /// Answers rejected (not one of the options).
    pub rejected: u32,
    /// HITs asked for one more answer.
    pub extended: u32,
    /// HITs taken off the list because their task closed.
    pub expired: u32,
    /// Jobs whose pass failed (logged; tried again next pass).
    pub failed_jobs: u32,
}

/// The Mechanical Turk connector over one store.
pub struct Connector {
    store: Arc<dyn Store>,
    client: Client,
    settings: Settings,
    workers: Mutex<HashMap<String, UserId>>,
}

impl Connector {
    /// A connector with `settings` (the keys are not tried until the first
    /// pass).
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Result<Self, String> {
        let client = Client::new(
            &settings.endpoint,
            &settings.region,
            settings.credentials.clone(),
        )?;
        Ok(Self {
            store,
            client,
            settings,
            workers: Mutex::new(HashMap::new()),
        })
    }

    /// The client (to check the keys at start, say).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Passes every `settings.poll` until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        match self.client.balance().await {
            Ok(balance) => tracing::info!(
                endpoint = %self.settings.endpoint,
                balance,
                "Mechanical Turk connector started"
            ),
            Err(e) => tracing::error!(
                endpoint = %self.settings.endpoint,
                error = %e,
                "Mechanical Turk does not accept these keys or cannot be reached; \
                 3a_amt steps wait until it does"
            ),
        }
        loop {
            match self.sync().await {
                Ok(r) if r != SyncReport::default() => tracing::info!(
                    posted = r.posted,
                    answers = r.answers,
                    approved = r.approved,
                    rejected = r.rejected,
                    extended = r.extended,
                    expired = r.expired,
                    failed_jobs = r.failed_jobs,
                    "Mechanical Turk pass"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Mechanical Turk pass failed"),
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// One pass over every job Mechanical Turk answers. A job that fails
    /// (the service unreachable, say) is logged and does not stop the
    /// others.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        let mut report = SyncReport::default();
        for job in self.store.crowd_jobs(Crowd::MechanicalTurk).await? {
            if let Err(e) = self.sync_job(&job, &mut report).await {
                report.failed_jobs += 1;
                tracing::warn!(job = job.id.0, error = %e, "Mechanical Turk pass over a job failed");
            }
        }
        Ok(report)
    }

    async fn sync_job(&self, job: &Job, report: &mut SyncReport) -> anyhow::Result<()> {
        for task in self.store.crowd_tasks(job.id).await? {
            let hit = match &task.hit {
                Some(h) if h.hit_id.is_some() => h.clone(),
                // Asked for, but the answer was never recorded: asking again
                // with the same token returns that HIT (or makes it, if the
                // first ask never arrived); a task closed meanwhile then
                // has it taken down below.
                Some(h) => self.post(job, &task, Some(h.clone()), report).await?,
                None if task.state != "open" => continue,
                None => self.post(job, &task, None, report).await?,
            };
            self.collect(job, &task, hit, report).await?;
        }
        Ok(())
    }

    /// Posts the task's HIT, storing its token first.
    async fn post(
        &self,
        job: &Job,
        task: &CrowdTask,
        existing: Option<CrowdHit>,
        report: &mut SyncReport,
    ) -> anyhow::Result<CrowdHit> {
        let workers = job.config.policy.workers;
        let mut hit = match existing {
            Some(h) => h,
            None => {
                let hit = CrowdHit {
                    seq: task.seq,
                    token: format!(
                        "tutti-{}-{}-{:016x}",
                        job.id.0,
                        task.seq,
                        rand::random::<u64>()
                    ),
                    hit_id: None,
                    max_assignments: workers.k.min(workers.n).max(1),
                    closed: false,
                };
                self.store.put_crowd_hit(job.id, &hit).await?;
                hit
            }
        };
        let c = &job.config;
        let hs = c.hit.clone().unwrap_or_default();
        let id = self
            .client
            .create_hit(&NewHit {
                title: truncate(hs.title.as_deref().unwrap_or(&c.name), 128),
                description: match hs.description.as_deref().map(|d| truncate(d, 1900)) {
                    Some(d) if !d.trim().is_empty() => d,
                    _ => match truncate(&strip_tags(&c.short_instructions), 1900) {
                        d if d.is_empty() => {
                            format!("Answer one question: {}", truncate(&c.name, 100))
                        }
                        d => d,
                    },
                },
                keywords: hs.keywords.clone().map_or_else(
                    || "labeling, classification, tutti".into(),
                    |k| truncate(&k, 1000),
                ),
                reward: hs
                    .reward
                    .clone()
                    .unwrap_or_else(|| self.settings.reward.clone()),
                max_assignments: hit.max_assignments,
                lifetime_secs: hs.lifetime_secs.unwrap_or(self.settings.lifetime.as_secs()),
                assignment_secs: u64::from(c.policy.time_limit_secs).clamp(30, 365 * 24 * 3600),
                auto_approval_secs: hs
                    .auto_approval_secs
                    .unwrap_or(self.settings.auto_approval.as_secs()),
                qualifications: crate::mturk::client::qualifications(
                    &hs,
                    self.settings.endpoint.contains("sandbox"),
                ),
                question: html_question(c, &task.data, &self.settings.submit_url),
                annotation: format!("tutti job {} task {}", job.id.0, task.seq),
                token: hit.token.clone(),
            })
            .await?;
        hit.hit_id = Some(id);
        self.store.put_crowd_hit(job.id, &hit).await?;
        report.posted += 1;
        Ok(hit)
    }

    /// Enters the HIT's new answers, pays for them, and asks for more or
    /// takes the HIT down as the task requires.
    async fn collect(
        &self,
        job: &Job,
        task: &CrowdTask,
        mut hit: CrowdHit,
        report: &mut SyncReport,
    ) -> anyhow::Result<()> {
        let Some(hit_id) = hit.hit_id.clone() else {
            return Ok(());
        };
        let policy = &job.config.policy;
        let mut state = task.state.clone();
        let assignments = self.client.assignments(&hit_id).await?;
        let mut rejected_now = 0u32;
        for a in &assignments {
            if a.assignment_status == "Rejected" {
                continue;
            }
            let submitted = a.assignment_status == "Submitted";
            let answer = answer_field(&a.answer, FIELD).map(|s| s.trim().to_owned());
            let valid = answer.filter(|s| {
                !s.is_empty()
                    && (job.config.free_text
                        || job.config.answers.is_empty()
                        || job.config.answers.iter().any(|o| o == s))
            });
            let Some(answer) = valid else {
                if submitted {
                    let reason = format!(
                        "The answer was not one of the options ({}).",
                        job.config.answers.join(", ")
                    );
                    self.client.reject(&a.assignment_id, &reason).await?;
                    report.rejected += 1;
                    rejected_now += 1;
                }
                continue;
            };
            let worker = self.worker(&a.worker_id).await?;
            let t = now();
            let lease = LeaseRequest {
                job: job.id,
                policy: *policy,
                worker,
                side: Side::Worker,
                gold: false,
                besides: None,
                now: t,
            };
            match self.store.lease_task(&lease, task.seq).await? {
                TaskLease::Leased(held) => {
                    let outcome = self
                        .store
                        .submit(&SubmitRequest {
                            assignment: held.id,
                            worker,
                            policy: *policy,
                            answer,
                            grade: None,
                            idempotency_key: Some(a.assignment_id.clone()),
                            evidence: None,
                            now: t,
                        })
                        .await?;
                    match outcome {
                        SubmitOutcome::Accepted { task_state, .. }
                        | SubmitOutcome::Replayed { task_state, .. } => {
                            report.answers += 1;
                            state = task_state;
                        }
                        SubmitOutcome::NotFound => {
                            anyhow::bail!(
                                "the lease on task {} vanished before its submit",
                                task.seq
                            )
                        }
                        SubmitOutcome::Refused { code, message } => tracing::warn!(
                            job = job.id.0,
                            task = task.seq,
                            code,
                            message,
                            "an answer from Mechanical Turk was not counted"
                        ),
                    }
                }
                TaskLease::Answered => {}
                TaskLease::Closed => tracing::info!(
                    job = job.id.0,
                    task = task.seq,
                    "an answer from Mechanical Turk came after its task closed; paid, not counted"
                ),
            }
            if submitted {
                self.client.approve(&a.assignment_id).await?;
                report.approved += 1;
            }
        }
        if state != "open" {
            if !hit.closed {
                self.client.expire(&hit_id).await?;
                report.expired += 1;
                hit.closed = true;
                self.store.put_crowd_hit(job.id, &hit).await?;
            }
            return Ok(());
        }
        // Still open: once every answer asked for is in, ask for one more
        // while fewer than `n` count (a rejected answer used up a slot of
        // the HIT without counting).
        let used = u32::try_from(assignments.len()).unwrap_or(u32::MAX);
        let counted = u32::try_from(
            assignments
                .iter()
                .filter(|a| a.assignment_status != "Rejected")
                .count(),
        )
        .unwrap_or(u32::MAX)
        .saturating_sub(rejected_now);
        if used >= hit.max_assignments && counted < policy.workers.n {
            let token = format!("{}-more-{}", hit.token, hit.max_assignments + 1);
            self.client.add_assignments(&hit_id, 1, &token).await?;
            hit.max_assignments += 1;
            self.store.put_crowd_hit(job.id, &hit).await?;
            report.extended += 1;
        }
        Ok(())
    }

    /// The Tutti worker standing for Mechanical Turk worker `id`, made the
    /// first time they answer.
    async fn worker(&self, id: &str) -> anyhow::Result<UserId> {
        let name = format!("mturk:{id}");
        if let Some(u) = self.workers.lock().expect("worker cache").get(&name) {
            return Ok(*u);
        }
        let user = match self.store.get_user_by_name(&name).await? {
            Some(u) => u,
            None => {
                let new = NewUser {
                    name: name.clone(),
                    display_name: format!("Mechanical Turk worker {id}"),
                    role: Role::Worker,
                };
                match self.store.create_user(&new, now()).await {
                    Ok(u) => u,
                    // Made by another process meanwhile.
                    Err(StoreError::Conflict(_)) => self
                        .store
                        .get_user_by_name(&name)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("the worker {name} vanished"))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.workers
            .lock()
            .expect("worker cache")
            .insert(name, user.id);
        Ok(user.id)
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Text without its HTML tags (for the HIT's plain-text description).
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_plain_text() {
        assert_eq!(strip_tags("<b>Read</b>  the <i>row</i>."), "Read the row .");
        assert_eq!(truncate("abcdef", 3), "abc");
    }
}
