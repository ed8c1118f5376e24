//! Delivering the spool: every pending report, oldest first, compliance then inventory, each call
//! retried with exponential backoff and full jitter while the overall deadline allows (Run Command
//! SIGKILLs the whole process group at its timeout, so we stop early and leave the rest spooled).
//! An entry is removed only once both calls were accepted; progress within an entry is written
//! back so a kill between the two calls does not resend the first (a resend would be harmless
//! anyway: the content hashes make it a no-op). Delivery stops at the first entry that cannot go
//! now, so order is kept. Entries older than the newest one delivered are stale and dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{ApiError, SsmApi};
use super::spool::{Envelope, Spool, SpoolError};

/// Backoff schedule.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Attempts per call before the entry waits for the next run.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
            attempts: 8,
        }
    }
}

/// What a delivery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Keys delivered, in order.
    pub delivered: Vec<String>,
    /// Keys dropped as older than a report already delivered.
    pub stale: Vec<String>,
    /// Entries moved to `rejected/`: (key, why).
    pub rejected: Vec<(String, String)>,
    /// Entries still waiting.
    pub pending: usize,
    /// Why delivery stopped early, when it did.
    pub stopped: Option<String>,
}

impl Delivery {
    /// True when nothing is left to send and nothing was refused.
    pub fn complete(&self) -> bool {
        self.pending == 0 && self.rejected.is_empty()
    }
}

/// A little jitter without a random-number crate: the clock's nanoseconds mixed with the pid.
fn jitter(up_to: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let ms = up_to.as_millis().max(1) as u64;
    Duration::from_millis(x % (ms + 1))
}

enum Step {
    Done,
    Rejected(String),
    Stop(String),
}

/// One call with retries inside the deadline.
fn with_retries(
    what: &str,
    deadline: Instant,
    backoff: Backoff,
    mut call: impl FnMut(Duration) -> Result<(), ApiError>,
) -> Step {
    let mut last = String::new();
    for attempt in 0..backoff.attempts {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(100) {
            return Step::Stop(format!(
                "{what}: delivery deadline reached{}",
                suffix(&last)
            ));
        }
        match call(left) {
            Ok(()) => return Step::Done,
            Err(ApiError::Rejected { code, message }) => {
                return Step::Rejected(format!("{what}: {code}: {message}"))
            }
            Err(e @ ApiError::Blocked { .. }) => return Step::Stop(format!("{what}: {e}")),
            Err(ApiError::Retryable(why)) => {
                tracing::warn!(attempt = attempt + 1, "{what}: {why}; retrying");
                last = why;
            }
        }
        let cap = backoff
            .base
            .saturating_mul(1 << attempt.min(16))
            .min(backoff.max);
        let sleep = jitter(cap);
        if Instant::now() + sleep >= deadline {
            return Step::Stop(format!(
                "{what}: delivery deadline reached{}",
                suffix(&last)
            ));
        }
        std::thread::sleep(sleep);
    }
    Step::Stop(format!(
        "{what}: gave up after {} attempts{}",
        backoff.attempts,
        suffix(&last)
    ))
}

fn suffix(last: &str) -> String {
    if last.is_empty() {
        String::new()
    } else {
        format!(" (last error: {last})")
    }
}

/// Deliver everything pending in `spool` (the caller holds the spool lock) until `deadline`.
pub fn deliver(
    spool: &Spool,
    api: &mut dyn SsmApi,
    deadline: Instant,
    backoff: Backoff,
) -> Result<Delivery, SpoolError> {
    deliver_with(spool, api, deadline, backoff, None)
}

/// [`deliver`], knowing the key of the report this run just spooled: it is the newest there is,
/// so it is never stale, and a delivered marker at or past it cannot be trusted (the clock
/// stepped back) and is ignored.
pub fn deliver_with(
    spool: &Spool,
    api: &mut dyn SsmApi,
    deadline: Instant,
    backoff: Backoff,
    fresh: Option<&str>,
) -> Result<Delivery, SpoolError> {
    let mut out = Delivery::default();
    out.rejected.extend(spool.sweep()?);
    let entries = spool.pending()?;
    let total = entries.len();
    let mut last = spool.last_delivered();
    if let (Some(l), Some(f)) = (last.as_deref(), fresh) {
        if l >= f {
            tracing::warn!(marker = l, fresh = f, "the delivered marker is not older than this run's report (the clock stepped back?): ignored");
            last = None;
        }
    }
    'entries: for (n, entry) in entries.into_iter().enumerate() {
        let mut envelope: Envelope = match spool.load(&entry) {
            Ok(e) => e,
            Err(why) => {
                let reason = format!("unreadable spool entry: {why}");
                tracing::error!(path = %entry.path.display(), "{reason}; moved to rejected/");
                spool.set_aside(&entry.path, &reason)?;
                out.rejected.push((entry.key, reason));
                continue;
            }
        };
        if last.as_deref().is_some_and(|l| entry.key.as_str() <= l) {
            tracing::warn!(key = %entry.key, "spooled report is older than one already delivered; dropped, never sent over the newer one");
            spool.remove(&entry.path)?;
            out.stale.push(entry.key);
            continue;
        }
        let path: PathBuf = entry.path;
        let endpoint = api.endpoint();
        for compliance in [true, false] {
            let (name, done) = if compliance {
                ("PutComplianceItems", envelope.compliance_delivered)
            } else {
                ("PutInventory", envelope.inventory_delivered)
            };
            if done {
                continue;
            }
            let step = with_retries(
                &format!("{name} to {endpoint}"),
                deadline,
                backoff,
                |left| {
                    api.set_attempt_timeout(left);
                    if compliance {
                        api.put_compliance_items(&envelope.compliance)
                    } else {
                        api.put_inventory(&envelope.inventory)
                    }
                },
            );
            match step {
                // Progress is saved after the first call only: after the second the entry goes.
                Step::Done if compliance => {
                    envelope.compliance_delivered = true;
                    spool.put(&envelope)?;
                }
                Step::Done => {}
                Step::Rejected(why) => {
                    tracing::error!(key = %entry.key, "{why}; spool entry kept in rejected/");
                    spool.set_aside(&path, &why)?;
                    out.rejected.push((entry.key, why));
                    continue 'entries;
                }
                Step::Stop(why) => {
                    out.pending = total - n;
                    out.stopped = Some(why);
                    return Ok(out);
                }
            }
        }
        spool.set_last_delivered(&entry.key)?;
        spool.remove(&path)?;
        last = Some(entry.key.clone());
        out.delivered.push(entry.key);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The delivery loop against an in-memory SSM with scripted faults (the real endpoint and the
    //! AWS CLI are in tests/ssm.rs); the spool is a real directory.
    use std::collections::VecDeque;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::report::testutil::sample_report;
    use crate::ssm::{envelope, Target};

    #[derive(Default)]
    struct Scripted {
        faults: VecDeque<ApiError>,
        /// (operation, report generated_at) in the order the service accepted them.
        accepted: Vec<(&'static str, i64)>,
        calls: usize,
    }

    impl SsmApi for Scripted {
        fn put_compliance_items(
            &mut self,
            u: &crate::ssm::payload::ComplianceUpload,
        ) -> Result<(), ApiError> {
            self.calls += 1;
            if let Some(f) = self.faults.pop_front() {
                return Err(f);
            }
            self.accepted.push(("compliance", u.execution_time));
            Ok(())
        }
        fn put_inventory(
            &mut self,
            u: &crate::ssm::payload::InventoryUpload,
        ) -> Result<(), ApiError> {
            self.calls += 1;
            if let Some(f) = self.faults.pop_front() {
                return Err(f);
            }
            let t: jiff::Timestamp = u.capture_time.parse().unwrap();
            self.accepted.push(("inventory", t.as_second()));
            Ok(())
        }
        fn endpoint(&self) -> String {
            "memory".into()
        }
    }

    fn fast() -> Backoff {
        Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
            attempts: 8,
        }
    }

    /// [`deliver`] with 30 s to go and [`fast`] backoff.
    fn deliver_soon(spool: &Spool, api: &mut dyn SsmApi) -> Result<Delivery, SpoolError> {
        deliver(spool, api, Instant::now() + Duration::from_secs(30), fast())
    }

    fn spool_with(times: &[&str]) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool")).unwrap();
        let target = Target {
            instance_id: "i-0123456789abcdef0".into(),
            region: Some("eu-west-1".into()),
            command_id: None,
        };
        for t in times {
            let mut report = sample_report();
            report.generated_at = t.to_string();
            let (env, valid) = envelope(&report, &target);
            valid.unwrap();
            let path = spool.put(&env).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        (dir, spool)
    }

    fn secs(t: &str) -> i64 {
        t.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    const T1: &str = "2026-11-29T10:00:00Z";
    const T2: &str = "2026-11-29T11:00:00Z";
    const T3: &str = "2026-11-29T12:00:00Z";

    #[test]
    fn delivers_oldest_first_and_empties_the_spool() {
        let (_d, spool) = spool_with(&[T3, T1, T2]);
        let mode = std::fs::metadata(spool.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mut api = Scripted::default();
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert!(d.complete(), "{d:?}");
        assert_eq!(d.delivered.len(), 3);
        let order: Vec<i64> = api.accepted.iter().map(|(_, t)| *t).collect();
        assert_eq!(
            order,
            [secs(T1), secs(T1), secs(T2), secs(T2), secs(T3), secs(T3)]
        );
        assert!(spool.pending().unwrap().is_empty());
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        let (_d, spool) = spool_with(&[T1]);
        let mut api = Scripted {
            faults: [
                ApiError::Retryable("ThrottlingException (HTTP 400): Rate exceeded".into()),
                ApiError::Retryable("InternalServerError (HTTP 500)".into()),
            ]
            .into(),
            ..Scripted::default()
        };
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert!(d.complete(), "{d:?}");
        assert_eq!(api.calls, 4);
    }

    #[test]
    fn the_deadline_leaves_the_rest_spooled_in_order() {
        let (_d, spool) = spool_with(&[T1, T2]);
        let mut api = Scripted {
            faults: std::iter::repeat_n(ApiError::Retryable("reset".into()), 1000).collect(),
            ..Scripted::default()
        };
        let d = deliver(
            &spool,
            &mut api,
            Instant::now() + Duration::from_millis(300),
            fast(),
        )
        .unwrap();
        assert_eq!(d.pending, 2);
        assert!(d.stopped.as_deref().unwrap().contains("reset"), "{d:?}");
        assert_eq!(spool.pending().unwrap().len(), 2);
        // The faults clear: the next pass delivers both, oldest first.
        api.faults.clear();
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert_eq!(d.delivered.len(), 2);
        assert_eq!(api.accepted[0].1, secs(T1));
        assert_eq!(api.accepted[3].1, secs(T2));
    }

    #[test]
    fn a_rejected_payload_is_set_aside_and_the_next_one_goes() {
        let (_d, spool) = spool_with(&[T1, T2]);
        let mut api = Scripted {
            faults: [ApiError::Rejected {
                code: "ValidationException".into(),
                message: "1 validation error detected".into(),
            }]
            .into(),
            ..Scripted::default()
        };
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(d.delivered.len(), 1);
        assert_eq!(spool.rejected().len(), 1);
        let reason = std::fs::read_to_string(
            spool
                .dir()
                .join("rejected")
                .join(format!("{}.reason", spool.rejected()[0])),
        )
        .unwrap();
        assert!(reason.contains("ValidationException"), "{reason}");
    }

    #[test]
    fn blocked_stops_and_keeps_everything() {
        let (_d, spool) = spool_with(&[T1, T2]);
        let mut api = Scripted {
            faults: [ApiError::Blocked {
                code: "AccessDeniedException".into(),
                message: "not authorized to perform ssm:PutComplianceItems".into(),
            }]
            .into(),
            ..Scripted::default()
        };
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert_eq!(d.pending, 2);
        assert_eq!(api.calls, 1, "no retry of a permission error");
        assert!(d.stopped.unwrap().contains("AccessDenied"));
    }

    #[test]
    fn a_report_older_than_one_delivered_is_never_sent() {
        let (_d, spool) = spool_with(&[T2]);
        let mut api = Scripted::default();
        deliver_soon(&spool, &mut api).unwrap();
        // An older report shows up (a clock step, a restored spool): dropped, not sent.
        let target = Target {
            instance_id: "i-0123456789abcdef0".into(),
            region: None,
            command_id: None,
        };
        let mut old = sample_report();
        old.generated_at = T1.into();
        spool.put(&envelope(&old, &target).0).unwrap();
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert_eq!(d.stale.len(), 1);
        assert_eq!(api.accepted.len(), 2);
    }

    #[test]
    fn progress_within_an_entry_is_kept_across_a_stop() {
        let (_d, spool) = spool_with(&[T1]);
        let mut api = Scripted::default();
        // Compliance goes through, then inventory is blocked.
        struct Half<'a>(&'a mut Scripted);
        impl SsmApi for Half<'_> {
            fn put_compliance_items(
                &mut self,
                u: &crate::ssm::payload::ComplianceUpload,
            ) -> Result<(), ApiError> {
                self.0.put_compliance_items(u)
            }
            fn put_inventory(
                &mut self,
                _: &crate::ssm::payload::InventoryUpload,
            ) -> Result<(), ApiError> {
                Err(ApiError::Blocked {
                    code: "AccessDeniedException".into(),
                    message: "no ssm:PutInventory".into(),
                })
            }
            fn endpoint(&self) -> String {
                "memory".into()
            }
        }
        let d = deliver_soon(&spool, &mut Half(&mut api)).unwrap();
        assert_eq!(d.pending, 1);
        let e = spool.load(&spool.pending().unwrap()[0]).unwrap();
        assert!(e.compliance_delivered && !e.inventory_delivered);
        deliver_soon(&spool, &mut api).unwrap();
        let ops: Vec<&str> = api.accepted.iter().map(|(op, _)| *op).collect();
        assert_eq!(
            ops,
            ["compliance", "inventory"],
            "compliance not sent twice"
        );
    }

    #[test]
    fn an_unreadable_entry_is_set_aside_not_deleted() {
        let (_d, spool) = spool_with(&[T2]);
        std::fs::write(
            spool.dir().join("00000000000000000001-0000000001.json"),
            "{ torn",
        )
        .unwrap();
        let mut api = Scripted::default();
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(d.delivered.len(), 1);
        assert!(spool.rejected()[0].starts_with("00000000000000000001"));
    }

    #[test]
    fn a_second_run_waits_for_the_lock_until_its_deadline() {
        let (_d, spool) = spool_with(&[]);
        let held = spool.lock(Instant::now() + Duration::from_secs(1)).unwrap();
        let err = spool
            .lock(Instant::now() + Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, SpoolError::Busy { .. }), "{err}");
        drop(held);
        spool
            .lock(Instant::now() + Duration::from_millis(200))
            .unwrap();
    }

    /// The key of the report spooled at `t`, as `spool_with` wrote it.
    fn key_at(spool: &Spool, t: &str) -> String {
        let nanos = format!(
            "{:020}",
            t.parse::<jiff::Timestamp>().unwrap().as_nanosecond()
        );
        spool
            .pending()
            .unwrap()
            .into_iter()
            .find(|e| e.key.starts_with(&nanos))
            .unwrap()
            .key
    }

    #[test]
    fn an_untrustworthy_delivered_marker_is_ignored_never_a_reason_to_drop() {
        // garbage, a key far in the future (the clock stepped back), and a FIFO
        for marker in ["garbage\n", "99999999999999999999-0000000001\n", "fifo"] {
            let (_d, spool) = spool_with(&[T1, T2]);
            let path = spool.dir().join(".last-delivered");
            if marker == "fifo" {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .unwrap();
            } else {
                std::fs::write(&path, marker).unwrap();
            }
            let mut api = Scripted::default();
            let d = deliver_soon(&spool, &mut api).unwrap();
            assert!(d.complete() && d.stale.is_empty(), "{marker}: {d:?}");
            assert_eq!(d.delivered.len(), 2, "{marker}");
        }
        // a trustworthy marker still keeps an older report from going out over a newer one
        let (_d, spool) = spool_with(&[T1, T2]);
        let k2 = key_at(&spool, T2);
        spool.set_last_delivered(&k2).unwrap();
        let d = deliver_soon(&spool, &mut Scripted::default()).unwrap();
        assert_eq!(d.stale.len(), 2, "{d:?}");
    }

    #[test]
    fn this_runs_report_is_never_stale_even_when_the_marker_is_newer() {
        let (_d, spool) = spool_with(&[T1, T2]);
        let k1 = key_at(&spool, T1);
        let k2 = key_at(&spool, T2);
        // delivered marker at T2 (not in the future), but this run's report is T1's: the clock
        // stepped back between runs, so the marker is ignored and both are sent
        spool.set_last_delivered(&k2).unwrap();
        let mut api = Scripted::default();
        let d = deliver_with(
            &spool,
            &mut api,
            Instant::now() + Duration::from_secs(30),
            fast(),
            Some(&k1),
        )
        .unwrap();
        assert!(d.stale.is_empty(), "{d:?}");
        assert_eq!(d.delivered, [k1, k2]);
    }

    #[test]
    fn junk_and_unreadable_entries_are_set_aside_and_never_count_against_the_cap() {
        let (_d, spool) = spool_with(&[T1]);
        for i in 0..(MAX_PENDING_FOR_TEST + 5) {
            std::fs::write(spool.dir().join(format!("junk-{i}.json")), "{}").unwrap();
        }
        // a FIFO and a link to a device under report keys: read without blocking, set aside
        let fifo = spool.dir().join("00000000000000000001-0000000001.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink(
            "/dev/zero",
            spool.dir().join("00000000000000000002-0000000001.json"),
        )
        .unwrap();
        let k1 = key_at(&spool, T1);
        // the cap never drops this run's report for junk
        assert!(spool.trim(Some(&k1)).unwrap().is_empty());
        let mut api = Scripted::default();
        let d = deliver_soon(&spool, &mut api).unwrap();
        assert_eq!(d.delivered, [k1]);
        assert_eq!(
            d.rejected.len(),
            MAX_PENDING_FOR_TEST + 5 + 2,
            "{:?}",
            d.rejected
        );
        let fifo_why = &d
            .rejected
            .iter()
            .find(|(k, _)| k == "00000000000000000001-0000000001")
            .unwrap()
            .1;
        assert!(fifo_why.contains("FIFO"), "{fifo_why}");
        assert!(spool.pending().unwrap().is_empty());
    }

    const MAX_PENDING_FOR_TEST: usize = crate::ssm::spool::MAX_PENDING;

    #[test]
    fn the_cap_drops_the_oldest_but_never_this_runs_report() {
        let (_d, spool) = spool_with(&[T1, T2, T3]);
        let keys: Vec<String> = spool
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        // make the spool overfull with copies under older keys
        let body = std::fs::read(&spool.pending().unwrap()[0].path).unwrap();
        for i in 0..MAX_PENDING_FOR_TEST {
            std::fs::write(
                spool.dir().join(format!("{:020}-0000000001.json", i + 1)),
                &body,
            )
            .unwrap();
        }
        let dropped = spool.trim(Some(&keys[0])).unwrap();
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        let left: Vec<String> = spool
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(left.len(), MAX_PENDING_FOR_TEST);
        assert!(left.contains(&keys[0]) && left.contains(&keys[2]));
    }

    #[test]
    fn a_shared_or_linked_spool_directory_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("tmp");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = Spool::open(&shared).unwrap_err().to_string();
        assert!(err.contains("writable by others (mode 1777)"), "{err}");
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the sticky, shared mode is untouched");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        let err = Spool::open(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        // a directory of its own with a loose mode is tightened
        let own = dir.path().join("own");
        std::fs::create_dir(&own).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
        Spool::open(&own).unwrap();
        let mode = std::fs::metadata(&own).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
    }
}
