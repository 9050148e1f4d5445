//! The store contract: every backend must pass these. SQLite always runs;
//! PostgreSQL runs too when `TUTTI_TEST_POSTGRES_URL` is set.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tutti_domain::ids::UserId;
use tutti_domain::job::{JobConfig, JobSpec};
use tutti_domain::policy::Side;
use tutti_domain::role::Role;
use tutti_domain::search::TextSearch;
use tutti_domain::time::Timestamp;
use tutti_store::*;

async fn stores() -> Vec<Arc<dyn Store>> {
    let mut out = Vec::new();
    for url in testing::fresh_urls().await.unwrap() {
        out.push(connect(&url).await.unwrap());
    }
    out
}

fn config(k: u32, n: u32, stewards: Option<(u32, u32)>, time_limit: u32) -> JobConfig {
    let mut policy = serde_json::json!({"k": k, "n": n, "time_limit_secs": time_limit});
    if let Some((l, m)) = stewards {
        policy["l"] = l.into();
        policy["m"] = m.into();
    }
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "Persons", "question": "Is ${name} a person?",
        "answers": ["Yes", "No"], "policy": policy
    }))
    .unwrap();
    JobConfig::parse(spec).unwrap()
}

struct Fixture {
    store: Arc<dyn Store>,
    job: Job,
    workers: Vec<UserId>,
}

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn fixture(store: Arc<dyn Store>, config: JobConfig, rows: usize, workers: usize) -> Fixture {
    let owner = store
        .create_user(
            &NewUser {
                name: "owner".into(),
                display_name: "Owner".into(),
                role: Role::Requester,
            },
            T0,
        )
        .await
        .unwrap();
    let ws = store.create_workspace("Lab", owner.id, T0).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..workers {
        let u = store
            .create_user(
                &NewUser {
                    name: format!("w{i}"),
                    display_name: String::new(),
                    role: Role::Worker,
                },
                T0,
            )
            .await
            .unwrap();
        store.set_member(ws.id, u.id, Role::Worker).await.unwrap();
        ids.push(u.id);
    }
    let job = store
        .create_job(ws.id, &config, owner.id, T0)
        .await
        .unwrap();
    import(&store, &job, rows, true).await;
    Fixture {
        store,
        job,
        workers: ids,
    }
}

async fn import(store: &Arc<dyn Store>, job: &Job, rows: usize, commit: bool) -> Option<u64> {
    let (tx, rx) = mpsc::channel(4);
    let sender = tokio::spawn(async move {
        let batch: Vec<ImportRow> = (0..rows)
            .map(|i| ImportRow::plain(serde_json::json!({"name": format!("n{i}")}).to_string()))
            .collect();
        tx.send(ImportMsg::Rows(batch)).await.unwrap();
        tx.send(if commit {
            ImportMsg::Done
        } else {
            ImportMsg::Failed
        })
        .await
        .unwrap();
    });
    let out = store.import_tasks(job, rx).await.unwrap();
    sender.await.unwrap();
    out
}

fn lease(f: &Fixture, worker: UserId, now: Timestamp) -> LeaseRequest {
    LeaseRequest {
        job: f.job.id,
        policy: f.job.config.policy,
        worker,
        side: Side::Worker,
        gold: false,
        besides: None,
        now,
    }
}

async fn next(f: &Fixture, worker: UserId, now: Timestamp) -> LeaseOutcome {
    f.store
        .next_assignment(&lease(f, worker, now))
        .await
        .unwrap()
}

fn leased(o: LeaseOutcome) -> Assignment {
    match o {
        LeaseOutcome::Leased(a) => a,
        other => panic!("expected a new lease, got {other:?}"),
    }
}

async fn submit(f: &Fixture, a: &Assignment, answer: &str, now: Timestamp) -> SubmitOutcome {
    f.store
        .submit(&SubmitRequest {
            assignment: a.id,
            worker: a.worker_id,
            policy: f.job.config.policy,
            answer: answer.into(),
            grade: None,
            idempotency_key: None,
            evidence: None,
            now,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_taken_user_name_is_a_conflict_on_name() {
    for store in stores().await {
        let new = NewUser {
            name: "ada".into(),
            display_name: "Ada".into(),
            role: Role::Worker,
        };
        store.create_user(&new, T0).await.unwrap();
        match store.create_user(&new, T0).await {
            Err(StoreError::Conflict(e)) => assert_eq!(e.field, "name"),
            other => panic!("{:?}: expected a conflict, got {other:?}", store.backend()),
        }
    }
}

#[tokio::test]
async fn a_revoked_token_or_disabled_user_no_longer_authenticates() {
    for store in stores().await {
        let new = NewUser {
            name: "ada".into(),
            display_name: "Ada".into(),
            role: Role::Worker,
        };
        let user = store.create_user(&new, T0).await.unwrap();
        let token = store
            .create_token(user.id, "cli", "hash-1", T0)
            .await
            .unwrap();
        store
            .create_token(user.id, "other", "hash-2", T0)
            .await
            .unwrap();
        assert_eq!(
            store.authenticate("hash-1", T0).await.unwrap().unwrap().id,
            user.id
        );
        assert!(store.authenticate("nope", T0).await.unwrap().is_none());
        assert!(store.revoke_token(token.id, T0).await.unwrap());
        assert!(!store.revoke_token(token.id, T0).await.unwrap());
        assert!(store.authenticate("hash-1", T0).await.unwrap().is_none());
        assert!(store.authenticate("hash-2", T0).await.unwrap().is_some());
        store.set_user_disabled(user.id, true).await.unwrap();
        assert!(store.authenticate("hash-2", T0).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_workspace_creator_is_its_admin_and_members_can_change_role() {
    for store in stores().await {
        let a = store
            .create_user(
                &NewUser {
                    name: "a".into(),
                    display_name: "".into(),
                    role: Role::Requester,
                },
                T0,
            )
            .await
            .unwrap();
        let b = store
            .create_user(
                &NewUser {
                    name: "b".into(),
                    display_name: "".into(),
                    role: Role::Worker,
                },
                T0,
            )
            .await
            .unwrap();
        let ws = store.create_workspace("W", a.id, T0).await.unwrap();
        assert_eq!(store.role_in(ws.id, a.id).await.unwrap(), Some(Role::Admin));
        assert_eq!(store.role_in(ws.id, b.id).await.unwrap(), None);
        store.set_member(ws.id, b.id, Role::Worker).await.unwrap();
        store.set_member(ws.id, b.id, Role::Steward).await.unwrap();
        assert_eq!(
            store.role_in(ws.id, b.id).await.unwrap(),
            Some(Role::Steward)
        );
        assert_eq!(
            store
                .list_workspaces(Some(b.id), None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store.remove_member(ws.id, b.id).await.unwrap());
        assert!(
            store
                .list_workspaces(Some(b.id), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_failed_import_leaves_nothing_behind_and_ids_stay_dense() {
    for store in stores().await {
        let f = fixture(store, config(2, 3, None, 60), 3, 0).await;
        assert_eq!(import(&f.store, &f.job, 5, false).await, None);
        assert_eq!(f.store.job_progress(f.job.id).await.unwrap().tasks, 3);
        assert_eq!(import(&f.store, &f.job, 2, true).await, Some(2));
        let seqs: Vec<i64> = f
            .store
            .results_page(f.job.id, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }
}

#[tokio::test]
async fn two_agreeing_answers_label_a_task_under_two_of_three() {
    for store in stores().await {
        let f = fixture(store, config(2, 3, None, 60), 1, 3).await;
        let a = leased(next(&f, f.workers[0], T0).await);
        let b = leased(next(&f, f.workers[1], T0).await);
        assert_eq!(a.task_id, b.task_id);
        // Both slots are out: the third worker must wait.
        assert_eq!(next(&f, f.workers[2], T0).await, LeaseOutcome::NothingNow);
        submit(&f, &a, "Yes", T0).await;
        match submit(&f, &b, "Yes", T0).await {
            SubmitOutcome::Accepted { task_state, .. } => assert_eq!(task_state, "labeled"),
            other => panic!("{other:?}"),
        }
        let r = &f.store.results_page(f.job.id, 0, 10).await.unwrap()[0];
        assert_eq!(r.label.as_deref(), Some("Yes"));
        assert_eq!(r.confidence, Some(1.0));
        assert_eq!(next(&f, f.workers[2], T0).await, LeaseOutcome::Finished);
    }
}

#[tokio::test]
async fn a_disagreement_sends_the_task_to_a_third_worker_only() {
    for store in stores().await {
        let f = fixture(store, config(2, 3, None, 60), 1, 4).await;
        let a = leased(next(&f, f.workers[0], T0).await);
        let b = leased(next(&f, f.workers[1], T0).await);
        submit(&f, &a, "Yes", T0).await;
        submit(&f, &b, "No", T0).await;
        let c = leased(next(&f, f.workers[2], T0).await);
        assert_eq!(next(&f, f.workers[3], T0).await, LeaseOutcome::NothingNow);
        // Workers who answered are done with the job.
        assert_eq!(
            next(&f, f.workers[0], T0).await,
            LeaseOutcome::DoneForWorker
        );
        submit(&f, &c, "No", T0).await;
        let r = &f.store.results_page(f.job.id, 0, 10).await.unwrap()[0];
        assert_eq!(
            (r.state.as_str(), r.label.as_deref()),
            ("labeled", Some("No"))
        );
        assert_eq!(r.votes.total(), 3);
    }
}

#[tokio::test]
async fn asking_again_hands_back_the_lease_already_held() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 60), 3, 1).await;
        let a = leased(next(&f, f.workers[0], T0).await);
        match next(&f, f.workers[0], T0).await {
            LeaseOutcome::Held(h) => assert_eq!(h.id, a.id),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn asking_past_the_lease_held_leases_one_task_ahead_and_holds_it() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 60), 3, 1).await;
        let me = f.workers[0];
        let a = leased(next(&f, me, T0).await);
        let past_a = LeaseRequest {
            besides: Some(a.id),
            ..lease(&f, me, T0)
        };
        let b = leased(f.store.next_assignment(&past_a).await.unwrap());
        assert_ne!(b.task_id, a.task_id);
        // Asked again, the lease ahead is held; plain asking finds the first.
        match f.store.next_assignment(&past_a).await.unwrap() {
            LeaseOutcome::Held(h) => assert_eq!(h.id, b.id),
            other => panic!("{other:?}"),
        }
        match next(&f, me, T0).await {
            LeaseOutcome::Held(h) => assert_eq!(h.id, a.id),
            other => panic!("{other:?}"),
        }
        // Once the first is answered, asking past the second takes the third.
        submit(&f, &a, "Yes", T0).await;
        let past_b = LeaseRequest {
            besides: Some(b.id),
            ..lease(&f, me, T0)
        };
        let c = leased(f.store.next_assignment(&past_b).await.unwrap());
        assert!(c.task_id != a.task_id && c.task_id != b.task_id);
    }
}

#[tokio::test]
async fn a_graded_answer_keeps_its_grade_beside_the_side_it_counts_for() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 60), 1, 1).await;
        let a = leased(next(&f, f.workers[0], T0).await);
        let out = f
            .store
            .submit(&SubmitRequest {
                assignment: a.id,
                worker: f.workers[0],
                policy: f.job.config.policy,
                answer: "Yes".into(),
                grade: Some(-7),
                idempotency_key: None,
                evidence: None,
                now: T0,
            })
            .await
            .unwrap();
        assert!(matches!(out, SubmitOutcome::Accepted { .. }), "{out:?}");
        let answers = f.store.answers_page(f.job.id, 0, 10).await.unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(
            (answers[0].annotation.as_str(), answers[0].grade),
            ("Yes", Some(-7))
        );
    }
}

#[tokio::test]
async fn a_retried_submit_is_not_a_second_vote() {
    for store in stores().await {
        let f = fixture(store, config(2, 3, None, 60), 1, 2).await;
        let a = leased(next(&f, f.workers[0], T0).await);
        let req = SubmitRequest {
            assignment: a.id,
            worker: a.worker_id,
            policy: f.job.config.policy,
            answer: "Yes".into(),
            grade: None,
            idempotency_key: Some("k1".into()),
            evidence: None,
            now: T0,
        };
        assert!(matches!(
            f.store.submit(&req).await.unwrap(),
            SubmitOutcome::Accepted { .. }
        ));
        assert!(matches!(
            f.store.submit(&req).await.unwrap(),
            SubmitOutcome::Replayed { .. }
        ));
        let other = SubmitRequest {
            answer: "No".into(),
            grade: None,
            idempotency_key: Some("k2".into()),
            ..req
        };
        assert!(matches!(
            f.store.submit(&other).await.unwrap(),
            SubmitOutcome::Refused {
                code: "already_submitted",
                ..
            }
        ));
        assert_eq!(f.store.job_progress(f.job.id).await.unwrap().answers, 1);
    }
}

#[tokio::test]
async fn an_expired_lease_reopens_the_task_and_a_late_answer_is_judged_by_need() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 10), 1, 3).await;
        let a = leased(next(&f, f.workers[0], T0).await);
        assert_eq!(
            f.store
                .expire_leases(Timestamp(T0.0 + 5_000), 100)
                .await
                .unwrap(),
            0
        );
        let later = Timestamp(T0.0 + 11_000);
        assert_eq!(f.store.expire_leases(later, 100).await.unwrap(), 1);
        assert_eq!(
            f.store.get_assignment(a.id).await.unwrap().unwrap().status,
            AssignmentStatus::Abandoned
        );
        // The task still needs its answer, so a late submit is accepted.
        match submit(&f, &a, "Yes", later).await {
            SubmitOutcome::Accepted {
                assignment,
                task_state,
                gold: None,
            } => {
                assert!(assignment.late);
                assert_eq!(task_state, "labeled");
            }
            other => panic!("{other:?}"),
        }

        // Second job: the reopened task goes to someone else first.
        let g = fixture_like(&f, config(1, 1, None, 10)).await;
        let a = leased(next(&g, g.workers[0], T0).await);
        g.store.expire_leases(later, 100).await.unwrap();
        let b = leased(next(&g, g.workers[1], later).await);
        assert_eq!(a.task_id, b.task_id);
        match submit(&g, &a, "Yes", later).await {
            SubmitOutcome::Refused { code, message } => {
                assert_eq!(code, "lease_expired");
                assert!(message.contains("leased to someone else"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

async fn fixture_like(f: &Fixture, config: JobConfig) -> Fixture {
    let ws = f.job.workspace_id;
    let job = f
        .store
        .create_job(ws, &config, f.job.created_by, T0)
        .await
        .unwrap();
    import(&f.store, &job, 1, true).await;
    Fixture {
        store: f.store.clone(),
        job,
        workers: f.workers.clone(),
    }
}

#[tokio::test]
async fn a_skipped_task_is_not_offered_again_but_a_released_one_is() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 60), 2, 1).await;
        let w = f.workers[0];
        let a = leased(next(&f, w, T0).await);
        let give = |id, how| GiveBackRequest {
            assignment: id,
            worker: w,
            policy: f.job.config.policy,
            how,
            now: T0,
        };
        f.store
            .give_back(&give(a.id, GiveBack::Release))
            .await
            .unwrap();
        let again = leased(next(&f, w, T0).await);
        assert_eq!(again.task_id, a.task_id);
        f.store
            .give_back(&give(again.id, GiveBack::Skip))
            .await
            .unwrap();
        let other = leased(next(&f, w, T0).await);
        assert_ne!(other.task_id, a.task_id);
        assert_eq!(
            f.store
                .give_back(&give(again.id, GiveBack::Skip))
                .await
                .unwrap(),
            GiveBackOutcome::NotPending(AssignmentStatus::Skipped)
        );
    }
}

#[tokio::test]
async fn a_worker_moves_forward_and_still_gets_a_task_given_back_behind_them() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 60), 3, 2).await;
        let (a, b) = (f.workers[0], f.workers[1]);
        let first = leased(next(&f, b, T0).await);
        assert_eq!(first.seq, 1);
        let second = leased(next(&f, a, T0).await);
        assert_eq!(second.seq, 2);
        submit(&f, &second, "Yes", T0).await;
        f.store
            .give_back(&GiveBackRequest {
                assignment: first.id,
                worker: b,
                policy: f.job.config.policy,
                how: GiveBack::Release,
                now: T0,
            })
            .await
            .unwrap();
        // Ahead of the worker first, then what was given back behind them.
        let third = leased(next(&f, a, T0).await);
        assert_eq!(third.seq, 3);
        submit(&f, &third, "No", T0).await;
        let back = leased(next(&f, a, T0).await);
        assert_eq!(back.seq, 1);
        submit(&f, &back, "No", T0).await;
        assert!(!matches!(next(&f, a, T0).await, LeaseOutcome::Leased(_)));
    }
}

#[tokio::test]
async fn a_session_expires_and_an_invitation_signs_up_exactly_one_person() {
    for store in stores().await {
        let f = fixture(store, config(1, 1, None, 60), 1, 1).await;
        let s = &f.store;
        let ws = f.job.workspace_id;
        let owner = s.get_user_by_name("owner").await.unwrap().unwrap();
        s.create_session(owner.id, "sess", T0, T0.plus_secs(60))
            .await
            .unwrap();
        assert!(s.authenticate("sess", T0).await.unwrap().is_some());
        assert!(
            s.authenticate("sess", T0.plus_secs(61))
                .await
                .unwrap()
                .is_none()
        );

        let later = T0.plus_secs(3600);
        s.create_invitation(ws, Role::Steward, "inv", owner.id, T0, later)
            .await
            .unwrap();
        let new = |name: &str| NewUser {
            name: name.into(),
            display_name: name.into(),
            role: Role::Worker,
        };
        let (user, joined, role) = s
            .sign_up(&new("ann"), "phc", Joining::Invitation("inv"), T0)
            .await
            .unwrap();
        assert_eq!((joined, role), (ws, Role::Steward));
        assert_eq!(s.role_in(ws, user.id).await.unwrap(), Some(Role::Steward));
        let (_, hash) = s.password_of("ann").await.unwrap().unwrap();
        assert_eq!(hash.as_deref(), Some("phc"));
        // Used once; a second person and a taken name leave nothing behind.
        let again = s
            .sign_up(&new("bob"), "phc", Joining::Invitation("inv"), T0)
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(e)) if e.field == "invitation"));
        assert!(s.get_user_by_name("bob").await.unwrap().is_none());
        let closed = s.sign_up(&new("cat"), "phc", Joining::Open(ws), T0).await;
        assert!(matches!(closed, Err(StoreError::Conflict(e)) if e.field == "workspace"));
        assert!(s.set_registration(ws, Registration::Open).await.unwrap());
        let (cat, _, role) = s
            .sign_up(&new("cat"), "phc", Joining::Open(ws), T0)
            .await
            .unwrap();
        assert_eq!(role, Role::Worker);
        assert_eq!(s.open_workspaces().await.unwrap().len(), 1);
        let taken = s.sign_up(&new("cat"), "phc", Joining::Open(ws), T0).await;
        assert!(matches!(taken, Err(StoreError::Conflict(e)) if e.field == "name"));
        assert_eq!(
            s.list_invitations(ws).await.unwrap()[0].used_by,
            Some(user.id)
        );
        assert!(s.revoke_session_hash("sess", T0).await.unwrap());
        assert!(!s.revoke_session_hash("sess", T0).await.unwrap());
        assert!(cat.id != user.id);
    }
}

#[tokio::test]
async fn stewards_decide_apart_from_workers() {
    for store in stores().await {
        let f = fixture(store, config(2, 2, Some((1, 1)), 60), 1, 2).await;
        let steward = f.workers[1];
        let w = leased(next(&f, f.workers[0], T0).await);
        let req = LeaseRequest {
            side: Side::Steward,
            ..lease(&f, steward, T0)
        };
        let s = leased(f.store.next_assignment(&req).await.unwrap());
        assert_eq!(s.side, Side::Steward);
        submit(&f, &w, "No", T0).await;
        submit(&f, &s, "Yes", T0).await;
        let r = &f.store.results_page(f.job.id, 0, 10).await.unwrap()[0];
        assert_eq!(r.label.as_deref(), Some("Yes"));
        assert_eq!(r.decided_by, Some(Side::Steward));
    }
}

#[tokio::test]
async fn concurrent_workers_never_over_lease_a_task() {
    for store in stores().await {
        let f = Arc::new(fixture(store, config(2, 3, None, 60), 20, 12).await);
        let mut handles = Vec::new();
        for &w in &f.workers {
            let f = f.clone();
            handles.push(tokio::spawn(async move {
                let mut rounds = 0;
                loop {
                    match next(&f, w, T0).await {
                        LeaseOutcome::Leased(a) | LeaseOutcome::Held(a) => {
                            // Disagree now and then so some tasks need a third answer.
                            let answer = if (a.seq + w.0) % 5 == 0 { "No" } else { "Yes" };
                            submit(&f, &a, answer, T0).await;
                        }
                        LeaseOutcome::NothingNow => tokio::task::yield_now().await,
                        _ => break,
                    }
                    rounds += 1;
                    if rounds >= 10_000 {
                        for r in f.store.results_page(f.job.id, 0, 100).await.unwrap() {
                            if r.state == "open" {
                                eprintln!("stuck: {} {:?}", r.seq, r.votes);
                            }
                        }
                        panic!("worker {w} never finished");
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let mut answers: HashMap<i64, u32> = HashMap::new();
        let mut after = 0;
        loop {
            let page = f.store.answers_page(f.job.id, after, 100).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.assignment_id.0;
            for a in &page {
                *answers.entry(a.seq).or_default() += 1;
            }
        }
        for r in f.store.results_page(f.job.id, 0, 100).await.unwrap() {
            assert_ne!(r.state, "open");
            let n = answers[&r.seq];
            let leader = r.votes.leader().unwrap().1;
            // An answer beyond need would show as more than n, or as a
            // label with more agreeing votes than k.
            assert!(n <= 3, "task {} got {n} answers", r.seq);
            assert!(leader <= 2, "task {} got {leader} agreeing answers", r.seq);
        }
    }
}

// Regression: SQLite writes once carried no check of the values they were
// computed from, and two answers submitted at once kept only one vote.
#[tokio::test]
async fn two_answers_submitted_at_once_are_both_counted() {
    for store in stores().await {
        let f = fixture(store, config(3, 3, None, 60), 30, 2).await;
        for _ in 0..30 {
            let a = leased(next(&f, f.workers[0], T0).await);
            let b = leased(next(&f, f.workers[1], T0).await);
            assert_eq!(a.task_id, b.task_id);
            let (ra, rb) = tokio::join!(submit(&f, &a, "Yes", T0), submit(&f, &b, "No", T0));
            assert!(matches!(ra, SubmitOutcome::Accepted { .. }), "{ra:?}");
            assert!(matches!(rb, SubmitOutcome::Accepted { .. }), "{rb:?}");
            let r = f
                .store
                .results_page(f.job.id, a.seq - 1, 1)
                .await
                .unwrap()
                .remove(0);
            assert_eq!(r.votes.total(), 2, "{:?} lost an answer", f.store.backend());
        }
    }
}

#[tokio::test]
async fn a_task_leased_by_number_counts_an_outside_answer_once_and_closes_when_decided() {
    for store in stores().await {
        let f = fixture(store, config(2, 2, None, 600), 3, 3).await;
        let b = f.store.backend();
        let take = |w: usize, seq: i64| {
            let req = lease(&f, f.workers[w], T0);
            let store = f.store.clone();
            async move { store.lease_task(&req, seq).await.unwrap() }
        };
        let TaskLease::Leased(a) = take(0, 2).await else {
            panic!("{b:?}: task 2 was not leased");
        };
        assert_eq!(
            a.seq, 2,
            "{b:?}: the task asked for, not the first open one"
        );
        // Asked again before the submit (a connector that stopped): the
        // same lease, not a second one.
        assert_eq!(take(0, 2).await, TaskLease::Leased(a.clone()), "{b:?}");
        assert!(matches!(
            submit(&f, &a, "Yes", T0).await,
            SubmitOutcome::Accepted { .. }
        ));
        assert_eq!(take(0, 2).await, TaskLease::Answered, "{b:?}");
        let TaskLease::Leased(second) = take(1, 2).await else {
            panic!("{b:?}: a second worker could not lease task 2");
        };
        match submit(&f, &second, "Yes", T0).await {
            SubmitOutcome::Accepted { task_state, .. } => {
                assert_eq!(task_state, "labeled", "{b:?}")
            }
            other => panic!("{b:?}: {other:?}"),
        }
        assert_eq!(take(2, 2).await, TaskLease::Closed, "{b:?}: a decided task");
        assert_eq!(take(2, 99).await, TaskLease::Closed, "{b:?}: no such task");
        let answers = f.store.task_answers(f.job.id, 2, 2).await.unwrap();
        assert_eq!(answers.len(), 2, "{b:?}: {answers:?}");
    }
}

#[tokio::test]
async fn a_crowd_job_lists_its_open_tasks_with_their_hits_until_each_hit_is_closed() {
    for store in stores().await {
        let mut c = config(1, 1, None, 600);
        c.crowd = tutti_domain::job::Crowd::MechanicalTurk;
        let f = fixture(store, c, 2, 1).await;
        let b = f.store.backend();
        let listed = f
            .store
            .crowd_jobs(tutti_domain::job::Crowd::MechanicalTurk)
            .await
            .unwrap();
        assert_eq!(
            listed.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![f.job.id],
            "{b:?}"
        );
        assert_eq!(
            listed[0].config.crowd,
            tutti_domain::job::Crowd::MechanicalTurk
        );
        // In-house workers are not offered it.
        assert!(
            f.store
                .jobs_for_worker(f.workers[0])
                .await
                .unwrap()
                .is_empty(),
            "{b:?}"
        );
        let tasks = f.store.crowd_tasks(f.job.id).await.unwrap();
        assert_eq!(
            tasks.iter().map(|t| t.seq).collect::<Vec<_>>(),
            vec![1, 2],
            "{b:?}"
        );
        assert!(tasks.iter().all(|t| t.hit.is_none()));
        let mut hit = CrowdHit {
            seq: 1,
            token: "tok-1".into(),
            hit_id: None,
            max_assignments: 1,
            closed: false,
        };
        f.store.put_crowd_hit(f.job.id, &hit).await.unwrap();
        hit.hit_id = Some("3HIT".into());
        f.store.put_crowd_hit(f.job.id, &hit).await.unwrap();
        assert_eq!(
            f.store.crowd_tasks(f.job.id).await.unwrap()[0].hit,
            Some(hit.clone())
        );
        // Both tasks decided: the job stays listed while task 1's HIT is open.
        for seq in [1, 2] {
            let TaskLease::Leased(a) = f
                .store
                .lease_task(&lease(&f, f.workers[0], T0), seq)
                .await
                .unwrap()
            else {
                panic!("{b:?}: task {seq} was not leased");
            };
            submit(&f, &a, "Yes", T0).await;
        }
        let open = f.store.crowd_tasks(f.job.id).await.unwrap();
        assert_eq!(
            open.iter()
                .map(|t| (t.seq, t.state.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "labeled")],
            "{b:?}"
        );
        hit.closed = true;
        f.store.put_crowd_hit(f.job.id, &hit).await.unwrap();
        assert!(
            f.store.crowd_tasks(f.job.id).await.unwrap().is_empty(),
            "{b:?}"
        );
        assert!(
            f.store
                .crowd_jobs(tutti_domain::job::Crowd::MechanicalTurk)
                .await
                .unwrap()
                .is_empty(),
            "{b:?}"
        );
    }
}

#[tokio::test]
async fn results_are_filtered_by_state_label_confidence_worker_and_text() {
    for store in stores().await {
        // Rows n0..n4; k=2 of n=3.
        let f = fixture(store, config(2, 3, None, 600), 5, 3).await;
        let b = f.store.backend();
        let answer = |w: usize, seq: i64, a: &'static str| {
            let req = lease(&f, f.workers[w], T0);
            let f = &f;
            async move {
                let TaskLease::Leased(l) = f.store.lease_task(&req, seq).await.unwrap() else {
                    panic!("task {seq} was not leased");
                };
                submit(f, &l, a, T0).await;
            }
        };
        // n0: Yes, Yes (labeled Yes, 1.0); n1: Yes, No, Yes (Yes, 2/3);
        // n2: Yes, No, No (No, 2/3); n3: one answer (open); n4: none.
        answer(0, 1, "Yes").await;
        answer(1, 1, "Yes").await;
        answer(0, 2, "Yes").await;
        answer(1, 2, "No").await;
        answer(2, 2, "Yes").await;
        answer(0, 3, "Yes").await;
        answer(1, 3, "No").await;
        answer(2, 3, "No").await;
        answer(2, 4, "No").await;
        let seqs = |filter: ResultFilter| {
            let store = f.store.clone();
            let job = f.job.id;
            async move {
                let page = store.results_filtered(job, &filter, 0, 100).await.unwrap();
                let summary = store.results_summary(job, &filter).await.unwrap();
                assert_eq!(summary.matching as usize, page.len(), "{filter:?}");
                page.iter().map(|r| r.seq).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            seqs(ResultFilter::default()).await,
            vec![1, 2, 3, 4, 5],
            "{b:?}"
        );
        let labeled = ResultFilter {
            state: Some("labeled".into()),
            ..ResultFilter::default()
        };
        assert_eq!(seqs(labeled.clone()).await, vec![1, 2, 3], "{b:?}");
        let yes = ResultFilter {
            label: Some("Yes".into()),
            ..ResultFilter::default()
        };
        assert_eq!(seqs(yes).await, vec![1, 2], "{b:?}");
        let unsure = ResultFilter {
            max_confidence: Some(0.9),
            ..labeled.clone()
        };
        assert_eq!(seqs(unsure).await, vec![2, 3], "{b:?}");
        let sure = ResultFilter {
            min_confidence: Some(0.9),
            ..ResultFilter::default()
        };
        assert_eq!(seqs(sure).await, vec![1], "{b:?}");
        let by_w2 = ResultFilter {
            worker: Some(f.workers[2]),
            ..ResultFilter::default()
        };
        assert_eq!(seqs(by_w2).await, vec![2, 3, 4], "{b:?}");
        let text = ResultFilter {
            text: TextSearch::parse("q", "N3").unwrap(),
            ..ResultFilter::default()
        };
        assert_eq!(seqs(text).await, vec![4], "{b:?}: any case");
        let wild = ResultFilter {
            text: TextSearch::parse("q", "%").unwrap(),
            ..ResultFilter::default()
        };
        assert_eq!(seqs(wild).await, Vec::<i64>::new(), "{b:?}: % is itself");
        let all = f
            .store
            .results_summary(f.job.id, &ResultFilter::default())
            .await
            .unwrap();
        assert_eq!(all.states.get("labeled"), Some(&3), "{b:?}: {all:?}");
        assert_eq!(all.states.get("open"), Some(&2), "{b:?}: {all:?}");
        assert_eq!(all.labels.get("Yes"), Some(&2), "{b:?}: {all:?}");
        assert_eq!(all.labels.get("No"), Some(&1), "{b:?}: {all:?}");
        assert_eq!(all.confidence.iter().sum::<i64>(), 3, "{b:?}: {all:?}");
        assert_eq!(
            (all.confidence[6], all.confidence[9]),
            (2, 1),
            "{b:?}: {all:?}"
        );
    }
}

/// Rounds of answers, disagreements and skips by `workers` in turn, a
/// second apart.
async fn play(f: &Fixture, t: &mut Timestamp, rounds: usize, workers: std::ops::Range<usize>) {
    for i in 0..rounds {
        let w = workers.start + i % workers.len();
        *t = Timestamp(t.0 + 1_000);
        let a = match next(f, f.workers[w], *t).await {
            LeaseOutcome::Leased(a) | LeaseOutcome::Held(a) => a,
            _ => continue,
        };
        match (i * 7) % 6 {
            0 => {
                let req = GiveBackRequest {
                    assignment: a.id,
                    worker: a.worker_id,
                    policy: f.job.config.policy,
                    how: GiveBack::Skip,
                    now: *t,
                };
                f.store.give_back(&req).await.unwrap();
            }
            _ => {
                let answer = if (a.seq + w as i64) % 3 == 0 {
                    "No"
                } else {
                    "Yes"
                };
                submit(f, &a, answer, *t).await;
            }
        }
    }
}

#[tokio::test]
async fn job_figures_kept_by_every_write_equal_a_recount_from_the_answers() {
    for store in stores().await {
        let f = fixture(store, config(2, 3, None, 60), 30, 4).await;
        // One control question, for the stop with exclusion at the end.
        let (tx, rx) = mpsc::channel(2);
        tx.send(ImportMsg::Rows(vec![ImportRow {
            data: serde_json::json!({"name": "gold"}).to_string(),
            gold: Some("Yes".into()),
        }]))
        .await
        .unwrap();
        tx.send(ImportMsg::Done).await.unwrap();
        f.store.import_tasks(&f.job, rx).await.unwrap();
        let policy = f.job.config.policy;
        let mut t = T0;
        let mut left_pending = Vec::new();
        play(&f, &mut t, 40, 0..4).await;
        // Leases left to run out.
        for &w in &f.workers {
            if let LeaseOutcome::Leased(a) | LeaseOutcome::Held(a) = next(&f, w, t).await {
                left_pending.push(a);
            }
        }
        // Two hours on: answers and decisions land in a later hour than the
        // ones the exclusion below takes back.
        let t_late = Timestamp(t.0 + 7_200_000);
        assert!(f.store.expire_leases(t_late, 100).await.unwrap() > 0);
        // Late answers for half: counted where the task still needs them.
        for a in &left_pending[..left_pending.len() / 2] {
            submit(&f, a, "Yes", t_late).await;
        }
        let gold = LeaseRequest {
            gold: true,
            ..lease(&f, f.workers[3], t_late)
        };
        let g = leased(f.store.next_assignment(&gold).await.unwrap());
        submit(&f, &g, "No", t_late).await;
        let out = f
            .store
            .stop_worker(f.job.id, f.workers[3], &policy, true, t_late)
            .await
            .unwrap();
        assert!(out.excluded > 0 && out.reopened > 0, "{out:?}");
        t = t_late;
        play(&f, &mut t, 60, 0..3).await;
        let kept = f.store.worker_quality(f.job.id).await.unwrap();
        let sum = |get: fn(&WorkerQuality) -> i64| kept.iter().map(get).sum::<i64>();
        assert!(sum(|q| q.answers) > 20, "{kept:?}");
        assert!(sum(|q| q.skipped) > 0, "{kept:?}");
        assert!(sum(|q| q.abandoned) > 0, "{kept:?}");
        assert!(sum(|q| q.agreement_answers) > 0, "{kept:?}");
        assert!(
            kept.iter().any(|q| q.agreement.is_some_and(|a| a < 1.0)),
            "someone disagreed: {kept:?}"
        );
        let hours = f.store.job_activity(f.job.id).await.unwrap();
        assert_eq!(
            hours.iter().map(|h| h.answers).sum::<i64>(),
            sum(|q| q.answers),
            "{hours:?}"
        );
        assert!(
            hours.iter().map(|h| h.decided).sum::<i64>() > 0,
            "{hours:?}"
        );
        assert!(hours.len() >= 2, "{hours:?}");
        f.store.recount_job_figures(f.job.id).await.unwrap();
        let counted = f.store.worker_quality(f.job.id).await.unwrap();
        assert_eq!(kept, counted);
        assert_eq!(hours, f.store.job_activity(f.job.id).await.unwrap());
    }
}

async fn undo(f: &Fixture, a: &Assignment, now: Timestamp) -> UndoOutcome {
    f.store
        .undo_answer(&UndoRequest {
            assignment: a.id,
            worker: a.worker_id,
            policy: f.job.config.policy,
            now,
        })
        .await
        .unwrap()
}

fn refusal(o: UndoOutcome) -> &'static str {
    match o {
        UndoOutcome::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_undone_answer_leaves_the_tally_and_every_figure_as_if_never_given() {
    for store in stores().await {
        let f = fixture(store, config(2, 3, None, 60), 6, 3).await;
        let (w0, w1) = (f.workers[0], f.workers[1]);
        let t = T0;
        let a = leased(next(&f, w0, t).await);
        assert!(matches!(
            submit(&f, &a, "Yes", t).await,
            SubmitOutcome::Accepted { .. }
        ));
        let t = Timestamp(t.0 + 5_000);
        let b = leased(next(&f, w0, t).await);
        assert!(matches!(
            submit(&f, &b, "No", t).await,
            SubmitOutcome::Accepted { .. }
        ));
        let before = f.store.worker_quality(f.job.id).await.unwrap();
        // Only the last answer, only one's own.
        assert_eq!(refusal(undo(&f, &a, t).await), "not_last");
        let theirs = Assignment {
            worker_id: w1,
            ..b.clone()
        };
        assert_eq!(undo(&f, &theirs, t).await, UndoOutcome::NotFound);
        let t = Timestamp(t.0 + 1_000);
        let UndoOutcome::Done(back) = undo(&f, &b, t).await else {
            panic!("the last answer was not taken back");
        };
        assert_eq!(back.status, AssignmentStatus::Pending);
        assert_eq!((back.leased_at, back.deadline), (t, t.plus_secs(60)));
        assert_eq!(refusal(undo(&f, &b, t).await), "not_answered");
        // The task's tally and the figures hold nothing of it.
        let rows = f.store.results_page(f.job.id, 0, 10).await.unwrap();
        let row_b = rows.iter().find(|r| r.seq == b.seq).unwrap();
        assert!(row_b.votes.0.is_empty(), "{row_b:?}");
        let kept = f.store.worker_quality(f.job.id).await.unwrap();
        assert_ne!(kept, before);
        assert_eq!(kept.iter().map(|q| q.answers).sum::<i64>(), 1);
        f.store.recount_job_figures(f.job.id).await.unwrap();
        assert_eq!(kept, f.store.worker_quality(f.job.id).await.unwrap());
        let hours = f.store.job_activity(f.job.id).await.unwrap();
        assert_eq!(hours.iter().map(|h| h.answers).sum::<i64>(), 1, "{hours:?}");
        // Answered again, it counts once; once decided, it stays.
        let t = Timestamp(t.0 + 1_000);
        assert!(matches!(
            submit(&f, &back, "Yes", t).await,
            SubmitOutcome::Accepted { .. }
        ));
        let c = leased(
            f.store
                .lease_task(&lease(&f, w1, t), b.seq)
                .await
                .map(|l| match l {
                    TaskLease::Leased(a) => LeaseOutcome::Leased(a),
                    other => panic!("{other:?}"),
                })
                .unwrap(),
        );
        assert_eq!(c.task_id, b.task_id);
        match submit(&f, &c, "Yes", t).await {
            SubmitOutcome::Accepted { task_state, .. } => assert_eq!(task_state, "labeled"),
            other => panic!("{other:?}"),
        }
        assert_eq!(refusal(undo(&f, &c, t).await), "task_decided");
        let kept = f.store.worker_quality(f.job.id).await.unwrap();
        f.store.recount_job_figures(f.job.id).await.unwrap();
        assert_eq!(kept, f.store.worker_quality(f.job.id).await.unwrap());
    }
}

/// Imports `rows` (JSON objects) into `job`.
async fn import_rows(store: &Arc<dyn Store>, job: &Job, rows: Vec<serde_json::Value>) {
    let (tx, rx) = mpsc::channel(4);
    let batch = rows
        .into_iter()
        .map(|r| ImportRow::plain(r.to_string()))
        .collect();
    tx.send(ImportMsg::Rows(batch)).await.unwrap();
    tx.send(ImportMsg::Done).await.unwrap();
    store.import_tasks(job, rx).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_text_search_keeps_rows_whose_values_hold_every_term_in_any_case() {
    use serde_json::json;
    for store in stores().await {
        let b = store.backend();
        let f = fixture(store, config(1, 1, None, 60), 0, 0).await;
        import_rows(
            &f.store,
            &f.job,
            vec![
                json!({"name": "Golden Retriever", "note": "a dog in the park"}),
                json!({"name": "Siamese", "note": "a cat, not a DOG"}),
                json!({"name": "item 42", "note": "50% off"}),
                json!({"name": "42 items", "note": "a_b"}),
                json!({"name": "Kate", "note": "Straße"}),
                json!({"note": "name"}),
                json!({"name": "Dog", "n": 7}),
            ],
        )
        .await;
        // The same words in another job are not found in this one.
        let other = fixture_like(&f, config(1, 1, None, 60)).await;
        import_rows(
            &f.store,
            &other.job,
            vec![json!({"name": "golden dog elsewhere"})],
        )
        .await;
        let found = |q: &'static str| {
            let store = f.store.clone();
            let job = f.job.id;
            async move {
                let filter = ResultFilter {
                    text: TextSearch::parse("q", q).unwrap(),
                    ..ResultFilter::default()
                };
                let page = store.results_filtered(job, &filter, 0, 100).await.unwrap();
                let summary = store.results_summary(job, &filter).await.unwrap();
                assert_eq!(summary.matching as usize, page.len(), "{b:?} {q:?}");
                page.iter().map(|r| r.seq).collect::<Vec<_>>()
            }
        };
        assert_eq!(found("dog").await, [1, 2, 7], "{b:?}: any case");
        assert_eq!(
            found("DOG golden").await,
            [1],
            "{b:?}: every word, any order"
        );
        assert_eq!(
            found("\"golden dog\"").await,
            Vec::<i64>::new(),
            "{b:?}: a phrase"
        );
        assert_eq!(found("\"item 42\"").await, [3], "{b:?}: a phrase");
        assert_eq!(found("item 42").await, [3, 4], "{b:?}: two words");
        assert_eq!(found("42").await, [3, 4], "{b:?}: a short word alone");
        assert_eq!(
            found("7 dog").await,
            [7],
            "{b:?}: a short word and a long one"
        );
        assert_eq!(found("50%").await, [3], "{b:?}: % is itself");
        assert_eq!(found("_").await, [4], "{b:?}: _ is itself");
        assert_eq!(found("name").await, [6], "{b:?}: values, not column names");
        assert_eq!(found("straße").await, [5], "{b:?}: beyond ASCII");
        assert_eq!(
            found("elsewhere").await,
            Vec::<i64>::new(),
            "{b:?}: this job only"
        );
        assert_eq!(
            found("retriever park cat").await,
            Vec::<i64>::new(),
            "{b:?}"
        );
        let state = ResultFilter {
            state: Some("open".into()),
            text: TextSearch::parse("q", "dog").unwrap(),
            ..ResultFilter::default()
        };
        let page = f
            .store
            .results_filtered(f.job.id, &state, 1, 100)
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [2, 7],
            "{b:?}: with another filter, past a cursor"
        );
    }
}
