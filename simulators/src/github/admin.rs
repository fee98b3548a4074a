//! The simulator's private endpoints: the test admin API under `/_sim/` and the fake runner's
//! session protocol under `/_runner/`. Neither is authenticated nor rate limited.
//!
//! Runner protocol: `POST /_runner/sessions {agentId, clientId}` → 201 `{sessionId}` (401 on a
//! bad credential, 409 when another process already holds the runner); `GET
//! /_runner/sessions/{id}/message?wait_ms=N` long-polls → 200 with a message (`job`,
//! `job_completed`, `deregistered`) or 204; `DELETE /_runner/sessions/{id}` ends the session.
//! A long poll whose client goes away ends the session: the runner goes offline and a job it
//! was running fails (and, being ephemeral, the runner is removed).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::state::{ConnectError, PollResult};
use super::{Fault, NewJob, Sim, WebhookSettings, lock, shapes};
use crate::runner::{RunnerMessage, SessionRequest, SessionResponse};

/// The `/_sim/` and `/_runner/` routes.
pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_sim/jobs", post(queue_job))
        .route("/_sim/jobs/{job_id}/cancel", post(cancel_job))
        .route("/_sim/state", get(state))
        .route("/_sim/deliveries", get(deliveries))
        .route("/_sim/faults", post(fault))
        .route("/_sim/webhooks", post(webhooks))
        .route("/_sim/steal", post(steal))
        .route("/_runner/sessions", post(open_session))
        .route("/_runner/sessions/{session_id}/message", get(message))
        .route("/_runner/sessions/{session_id}", delete(close_session))
        .with_state(sim)
}

async fn queue_job(State(sim): State<Arc<Sim>>, Json(job): Json<NewJob>) -> Response {
    (StatusCode::CREATED, Json(sim.queue_job(job))).into_response()
}

async fn cancel_job(State(sim): State<Arc<Sim>>, Path(job_id): Path<u64>) -> Response {
    match sim.cancel_job(job_id) {
        Some(job) => Json(shapes::job(&job, &sim.urls)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn state(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.snapshot()).into_response()
}

async fn deliveries(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.hooks.log()).into_response()
}

async fn fault(State(sim): State<Arc<Sim>>, Json(fault): Json<Fault>) -> StatusCode {
    lock(&sim.limits).add_fault(fault);
    StatusCode::NO_CONTENT
}

async fn webhooks(
    State(sim): State<Arc<Sim>>,
    Json(settings): Json<WebhookSettings>,
) -> StatusCode {
    sim.configure_webhooks(settings);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Steal {
    #[serde(default)]
    count: Option<u32>,
}

async fn steal(State(sim): State<Arc<Sim>>, Json(steal): Json<Steal>) -> StatusCode {
    sim.mutate(|w| {
        w.steal(steal.count.unwrap_or(1));
        ((), Vec::new())
    });
    StatusCode::NO_CONTENT
}

async fn open_session(
    State(sim): State<Arc<Sim>>,
    Json(request): Json<SessionRequest>,
) -> Response {
    let session_id = uuid::Uuid::new_v4().to_string();
    let connected =
        sim.mutate(
            |w| match w.connect(request.agent_id, &request.client_id, session_id.clone()) {
                Ok(effects) => (Ok(()), effects),
                Err(error) => (Err(error), Vec::new()),
            },
        );
    match connected {
        Ok(()) => (StatusCode::CREATED, Json(SessionResponse { session_id })).into_response(),
        Err(ConnectError::BadCredentials) => StatusCode::UNAUTHORIZED.into_response(),
        Err(ConnectError::AlreadyConnected) => StatusCode::CONFLICT.into_response(),
    }
}

#[derive(Deserialize)]
struct Wait {
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// Ends the session if the long poll is dropped before it answers (the client went away).
struct DisconnectGuard {
    sim: Arc<Sim>,
    session_id: String,
    armed: bool,
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!("runner went away during a poll; ending its session");
            self.sim.mutate(|w| ((), w.disconnect(&self.session_id)));
        }
    }
}

async fn message(
    State(sim): State<Arc<Sim>>,
    Path(session_id): Path<String>,
    Query(wait): Query<Wait>,
) -> Response {
    let wait = Duration::from_millis(wait.wait_ms.unwrap_or(20_000).min(60_000));
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = sim.subscribe();
    let mut guard = DisconnectGuard {
        sim: sim.clone(),
        session_id: session_id.clone(),
        armed: true,
    };
    let answer = loop {
        changes.borrow_and_update();
        let message = match sim.read(|w| w.poll(&session_id)) {
            PollResult::Job(job) => RunnerMessage::Job {
                job_id: job.id,
                run_id: job.run_id,
                name: job.name,
            },
            PollResult::JobCompleted(job) => RunnerMessage::JobCompleted {
                job_id: job.id,
                conclusion: job
                    .conclusion
                    .map(|c| c.as_str())
                    .unwrap_or("success")
                    .to_owned(),
            },
            PollResult::Deregistered => RunnerMessage::Deregistered,
            PollResult::UnknownSession => break StatusCode::NOT_FOUND.into_response(),
            PollResult::Nothing => {
                if tokio::time::timeout_at(deadline, changes.changed())
                    .await
                    .is_err()
                {
                    break StatusCode::NO_CONTENT.into_response();
                }
                continue;
            }
        };
        break Json(message).into_response();
    };
    guard.armed = false;
    answer
}

async fn close_session(State(sim): State<Arc<Sim>>, Path(session_id): Path<String>) -> StatusCode {
    sim.mutate(|w| ((), w.disconnect(&session_id)));
    StatusCode::NO_CONTENT
}
