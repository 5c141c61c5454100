//! The control API: the page's fault buttons, on the demo's own port, for scripts too.
//!
//! - `POST /faults/{fault}` (`stall`, `flood`, `cut`, `restart`, `max-clients`) with an
//!   optional JSON body `{"variants": [...], "events": N, "bytes": N, "seconds": S}` starts
//!   the fault on the named variants (all three when absent) and answers `202 {"id", ...}`.
//! - `GET /faults/{id}`: the job, with one row per variant that has finished.
//! - `GET /faults`: the faults there are, and the job running now, if any.
//!
//! Every input is checked, and what is wrong is said in a JSON `400`: an unknown fault or
//! variant, a field the fault does not take, a number out of range, a body that is not JSON.
//! One fault runs at a time (`409` meanwhile), since two would disturb each other's figures.
//! A request from a page of another origin is refused (`403`): only the compare page, and
//! tools that send no `Origin`, may trigger faults. The routes exist only when the demo listens
//! on loopback (see `crate::launch`), and every job is bounded by [`JOB_BOUND`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::{Fault, Params, Row, Target};

/// The longest a fault may run, all variants together; rows still missing then say so.
const JOB_BOUND: Duration = Duration::from_secs(240);
/// How many finished jobs are kept for `GET /faults/{id}`.
const JOBS_KEPT: usize = 32;

/// The demo as the control API sees it: the variants and the jobs run on them.
pub struct Demo {
    /// Every variant with the relay in front of it, in the page's order.
    pub targets: Vec<Target>,
    /// The origins the page is served at: the only ones that may trigger faults.
    pub origins: Vec<String>,
    /// The jobs, newest last.
    jobs: Mutex<Jobs>,
}

/// The jobs so far.
#[derive(Default)]
struct Jobs {
    /// The next job's id.
    next: u64,
    /// The newest [`JOBS_KEPT`] jobs, oldest first.
    kept: VecDeque<Job>,
    /// The running job's id.
    running: Option<u64>,
}

/// One fault, run on some variants.
struct Job {
    /// Its id.
    id: u64,
    /// The fault.
    fault: Fault,
    /// The variants it runs on, in the page's order.
    variants: Vec<&'static str>,
    /// The rows of the variants that have finished, in the order they finished.
    rows: Vec<Row>,
    /// When it started.
    started: Instant,
    /// How long it took, once done.
    took: Option<Duration>,
}

impl Job {
    /// The job as `GET /faults/{id}` shows it.
    fn to_json(&self) -> Value {
        let elapsed = self.took.unwrap_or_else(|| self.started.elapsed());
        json!({
            "id": self.id,
            "fault": self.fault,
            "moment": self.fault.moment().name(),
            "state": if self.took.is_some() { "done" } else { "running" },
            "variants": self.variants,
            "rows": self.rows,
            "elapsed_s": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        })
    }
}

/// Locks the jobs; a panic in a fault cannot leave them half-updated (each update is one
/// push or assignment), so a poisoned lock is still good.
fn lock(jobs: &Mutex<Jobs>) -> MutexGuard<'_, Jobs> {
    jobs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Demo {
    /// The demo with no jobs yet.
    pub fn new(targets: Vec<Target>, origins: Vec<String>) -> Arc<Demo> {
        Arc::new(Demo {
            targets,
            origins,
            jobs: Mutex::default(),
        })
    }

    /// Stops every variant.
    pub async fn stop(&self) {
        let stops = self.targets.iter().map(|t| t.variant.stop());
        futures_util::future::join_all(stops).await;
    }

    /// Records a new job and runs it on a task of its own; `Err` names the running one.
    fn start(
        self: &Arc<Self>,
        fault: Fault,
        params: Params,
        chosen: Vec<usize>,
    ) -> Result<u64, u64> {
        let mut jobs = lock(&self.jobs);
        if let Some(running) = jobs.running {
            return Err(running);
        }
        jobs.next += 1;
        let id = jobs.next;
        if jobs.kept.len() == JOBS_KEPT {
            jobs.kept.pop_front();
        }
        jobs.kept.push_back(Job {
            id,
            fault,
            variants: chosen
                .iter()
                .map(|&i| self.targets[i].variant.name)
                .collect(),
            rows: Vec::new(),
            started: Instant::now(),
            took: None,
        });
        jobs.running = Some(id);
        drop(jobs);
        tokio::spawn(Arc::clone(self).run(id, fault, params, chosen));
        Ok(id)
    }

    /// Runs job `id`, adding each variant's row as it comes, within [`JOB_BOUND`].
    async fn run(self: Arc<Self>, id: u64, fault: Fault, params: Params, chosen: Vec<usize>) {
        let each = |i: usize| {
            let demo = Arc::clone(&self);
            async move {
                let row = fault.run(&demo.targets[i], &params).await;
                demo.with_job(id, |job| job.rows.push(row));
            }
        };
        let all = async {
            if fault.one_at_a_time() {
                for &i in &chosen {
                    each(i).await;
                }
            } else {
                futures_util::future::join_all(chosen.iter().map(|&i| each(i))).await;
            }
        };
        let finished = tokio::time::timeout(JOB_BOUND, all).await.is_ok();
        for &i in &chosen {
            // A fault stopped midway must not leave a page's network down.
            self.targets[i].relay.restore();
        }
        let mut jobs = lock(&self.jobs);
        jobs.running = None;
        if let Some(job) = jobs.kept.iter_mut().find(|job| job.id == id) {
            if !finished {
                let missing: Vec<usize> = chosen
                    .iter()
                    .copied()
                    .filter(|&i| {
                        !job.rows
                            .iter()
                            .any(|r| r.variant == self.targets[i].variant.name)
                    })
                    .collect();
                for i in missing {
                    let why = format!("did not finish within {} s", JOB_BOUND.as_secs());
                    job.rows.push(Row::failed(&self.targets[i], why));
                }
            }
            job.took = Some(job.started.elapsed());
        }
    }

    /// Applies `change` to job `id`, if it is still kept.
    fn with_job(&self, id: u64, change: impl FnOnce(&mut Job)) {
        if let Some(job) = lock(&self.jobs).kept.iter_mut().find(|job| job.id == id) {
            change(job);
        }
    }
}

/// The control API's routes.
pub fn routes(demo: Arc<Demo>) -> Router {
    Router::new()
        .route("/faults", get(list))
        .route("/faults/{fault}", post(trigger).get(job))
        .with_state(demo)
}

/// A JSON error.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// `GET /faults`.
async fn list(State(demo): State<Arc<Demo>>) -> Response {
    let faults: Vec<Value> = Fault::ALL
        .iter()
        .map(|f| json!({ "name": f.name(), "moment": f.moment().name() }))
        .collect();
    let running = lock(&demo.jobs).running;
    axum::Json(json!({ "faults": faults, "running": running })).into_response()
}

/// `GET /faults/{id}`.
async fn job(State(demo): State<Arc<Demo>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a job id (a number)"),
        );
    };
    let jobs = lock(&demo.jobs);
    match jobs.kept.iter().find(|job| job.id == id) {
        Some(job) => axum::Json(job.to_json()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

/// What `POST /faults/{fault}` may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Asked {
    /// The variants to run on; all when absent.
    variants: Option<Vec<String>>,
    /// Flood: how many events.
    events: Option<usize>,
    /// Flood: bytes of data per event.
    bytes: Option<usize>,
    /// Cut: seconds the network stays down.
    seconds: Option<f64>,
}

/// `POST /faults/{fault}`.
async fn trigger(
    State(demo): State<Arc<Demo>>,
    Path(fault): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(origin) = headers.get("origin") {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| demo.origins.iter().any(|o| o == origin));
        if !allowed {
            return error(
                StatusCode::FORBIDDEN,
                "faults can be triggered from the compare page only",
            );
        }
    }
    let request = match check(&demo, &fault, &headers, &body) {
        Ok(request) => request,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let (fault, params, chosen) = request;
    let variants: Vec<&str> = chosen
        .iter()
        .map(|&i| demo.targets[i].variant.name)
        .collect();
    match demo.start(fault, params, chosen) {
        Ok(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "id": id,
                "fault": fault,
                "moment": fault.moment().name(),
                "variants": variants,
                "status": format!("/faults/{id}"),
            })),
        )
            .into_response(),
        Err(running) => (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "error": format!("fault job {running} is still running; one fault at a time"),
                "running": running,
            })),
        )
            .into_response(),
    }
}

/// Checks a trigger's fault, body and variants; `Err` says what is wrong.
fn check(
    demo: &Demo,
    fault: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Fault, Params, Vec<usize>), String> {
    let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    let fault = Fault::parse(fault).ok_or_else(|| {
        format!(
            "unknown fault {fault:?}; the faults are {}",
            names.join(", ")
        )
    })?;
    let asked: Asked = if body.iter().all(u8::is_ascii_whitespace) {
        Asked::default()
    } else {
        let json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err("the body must be JSON (Content-Type: application/json)".into());
        }
        serde_json::from_slice(body).map_err(|e| format!("the body: {e}"))?
    };
    let params = params(fault, &asked)?;
    let known: Vec<&str> = demo.targets.iter().map(|t| t.variant.name).collect();
    let chosen = variants(&known, asked.variants.as_deref())?;
    Ok((fault, params, chosen))
}

/// The fault's settings from what was asked, each in its range and for its fault only.
fn params(fault: Fault, asked: &Asked) -> Result<Params, String> {
    let mut params = Params::DEFAULT;
    let only = |field: &str, for_fault: Fault| {
        if fault == for_fault {
            Ok(())
        } else {
            Err(format!(
                "`{field}` is for the {} fault only",
                for_fault.name()
            ))
        }
    };
    if let Some(events) = asked.events {
        only("events", Fault::Flood)?;
        if !(1..=Params::MAX_EVENTS).contains(&events) {
            return Err(format!("`events` must be 1 to {}", Params::MAX_EVENTS));
        }
        params.events = events;
    }
    if let Some(bytes) = asked.bytes {
        only("bytes", Fault::Flood)?;
        if !(1..=Params::MAX_BYTES).contains(&bytes) {
            return Err(format!("`bytes` must be 1 to {}", Params::MAX_BYTES));
        }
        params.bytes = bytes;
    }
    if let Some(seconds) = asked.seconds {
        only("seconds", Fault::Cut)?;
        if !(0.5..=Params::MAX_SECONDS).contains(&seconds) {
            return Err(format!("`seconds` must be 0.5 to {}", Params::MAX_SECONDS));
        }
        params.seconds = seconds;
    }
    Ok(params)
}

/// The indexes in `known` of the named variants (all of them for `None`), each named once.
fn variants(known: &[&str], names: Option<&[String]>) -> Result<Vec<usize>, String> {
    let Some(names) = names else {
        return Ok((0..known.len()).collect());
    };
    if names.is_empty() {
        return Err("`variants` is empty; leave it out to run on all three".into());
    }
    let mut chosen = Vec::new();
    for name in names {
        let index = known.iter().position(|k| k == name).ok_or_else(|| {
            format!(
                "unknown variant {name:?}; the variants are {}",
                known.join(", ")
            )
        })?;
        if chosen.contains(&index) {
            return Err(format!("variant {name:?} is named twice"));
        }
        chosen.push(index);
    }
    // In the page's order, whatever order they were named in.
    chosen.sort_unstable();
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(json: &str) -> Result<Asked, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_are_checked_for_range_and_fault() {
        let flood = asked(r#"{"events": 50, "bytes": 10}"#).expect("valid");
        let set = params(Fault::Flood, &flood).expect("in range");
        assert_eq!((set.events, set.bytes), (50, 10));
        let problem = params(Fault::Stall, &flood).expect_err("not a stall setting");
        assert!(
            problem.contains("`events` is for the flood fault only"),
            "{problem}"
        );
        for events in [0, 20_001] {
            let out_of_range = asked(&format!(r#"{{"events": {events}}}"#)).expect("valid");
            assert!(
                params(Fault::Flood, &out_of_range).is_err(),
                "{events} events"
            );
        }
        let too_short = asked(r#"{"seconds": 0.1}"#).expect("valid");
        assert!(params(Fault::Cut, &too_short).is_err());
        let unknown = asked(r#"{"eventz": 1}"#).expect_err("unknown field");
        assert!(unknown.contains("unknown field `eventz`"), "{unknown}");
    }

    #[test]
    fn variants_are_known_named_once_and_kept_in_page_order() {
        let known = ["a", "b", "c"];
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(variants(&known, None), Ok(vec![0, 1, 2]));
        assert_eq!(variants(&known, Some(&names(&["c", "a"]))), Ok(vec![0, 2]));
        let unknown = variants(&known, Some(&names(&["d"]))).expect_err("unknown");
        assert!(
            unknown.contains("unknown variant \"d\"; the variants are a, b, c"),
            "{unknown}"
        );
        assert!(variants(&known, Some(&names(&["a", "a"]))).is_err());
        assert!(variants(&known, Some(&[])).is_err());
    }
}
