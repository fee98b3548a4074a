//! GitHub's JSON shapes for the simulated objects, shared by the REST routes and the webhooks.

use serde_json::{Value, json};

use super::state::{Job, Run, Runner};

/// Where the simulator's objects live: the API base and the web base for `html_url`s.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    /// The API base without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub(crate) api: String,
    /// The web base, `https://github.com`.
    pub(crate) html: String,
}

/// The runner version the simulated runners report.
pub(crate) const RUNNER_VERSION: &str = "2.330.0";

/// A stable numeric id for a name (repos and owners have ids in GitHub's JSON).
pub(crate) fn name_id(name: &str) -> u64 {
    name.to_lowercase().bytes().fold(1_000_003u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }) % 1_000_000_000
}

fn owner_of(full_name: &str) -> &str {
    full_name.split('/').next().unwrap_or(full_name)
}

/// A `workflow_job`, as in `GET /repos/{o}/{r}/actions/jobs/{id}` and webhook payloads.
pub(crate) fn job(job: &Job, urls: &Urls) -> Value {
    let (api, html, repo) = (&urls.api, &urls.html, &job.repo);
    json!({
        "id": job.id,
        "run_id": job.run_id,
        "workflow_name": "CI",
        "head_branch": "main",
        "run_url": format!("{api}/repos/{repo}/actions/runs/{}", job.run_id),
        "run_attempt": 1,
        "node_id": format!("CR_sim{}", job.id),
        "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
        "url": format!("{api}/repos/{repo}/actions/jobs/{}", job.id),
        "html_url": format!("{html}/{repo}/actions/runs/{}/job/{}", job.run_id, job.id),
        "status": job.status.as_str(),
        "conclusion": job.conclusion.map(|c| c.as_str()),
        "created_at": job.created_at,
        "started_at": job.started_at.unwrap_or(job.created_at),
        "completed_at": job.completed_at,
        "name": job.name,
        "steps": [],
        "check_run_url": format!("{api}/repos/{repo}/check-runs/{}", job.id),
        "labels": job.labels,
        "runner_id": job.runner_id,
        "runner_name": job.runner_name,
        "runner_group_id": job.runner_group_id,
        "runner_group_name": job.runner_group_id.map(|_| "Default"),
    })
}

/// A `minimal-repository` object, with every key GitHub's description requires.
pub(crate) fn repository(full_name: &str, urls: &Urls) -> Value {
    let (api, html) = (&urls.api, &urls.html);
    let owner = owner_of(full_name);
    let repo_api = format!("{api}/repos/{full_name}");
    let mut repo = json!({
        "id": name_id(full_name),
        "node_id": format!("R_sim{}", name_id(full_name)),
        "name": full_name.split('/').nth(1).unwrap_or_default(),
        "full_name": full_name,
        "private": true,
        "owner": user(owner, "Organization", urls),
        "html_url": format!("{html}/{full_name}"),
        "description": null,
        "fork": false,
        "url": repo_api,
        "default_branch": "main",
        "visibility": "private",
        "archived": false,
        "disabled": false,
    });
    // GitHub's URL templates, relative to the repository's API URL.
    const TEMPLATES: [(&str, &str); 36] = [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ];
    if let Some(map) = repo.as_object_mut() {
        for (key, suffix) in TEMPLATES {
            map.insert(key.to_owned(), Value::String(format!("{repo_api}{suffix}")));
        }
    }
    repo
}

/// A `simple-user` (an organization owner or an actor).
fn user(login: &str, kind: &str, urls: &Urls) -> Value {
    let (api, html) = (&urls.api, &urls.html);
    let id = name_id(login);
    let users = format!("{api}/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("O_sim{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": users,
        "html_url": format!("{html}/{login}"),
        "followers_url": format!("{users}/followers"),
        "following_url": format!("{users}/following{{/other_user}}"),
        "gists_url": format!("{users}/gists{{/gist_id}}"),
        "starred_url": format!("{users}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{users}/subscriptions"),
        "organizations_url": format!("{users}/orgs"),
        "repos_url": format!("{users}/repos"),
        "events_url": format!("{users}/events{{/privacy}}"),
        "received_events_url": format!("{users}/received_events"),
        "type": kind,
        "site_admin": false,
    })
}

/// An `organization` object for webhook payloads.
pub(crate) fn organization(login: &str, urls: &Urls) -> Value {
    json!({
        "login": login,
        "id": name_id(login),
        "url": format!("{}/orgs/{login}", urls.api),
        "repos_url": format!("{}/orgs/{login}/repos", urls.api),
    })
}

/// A `workflow_run` as in `GET /repos/{o}/{r}/actions/runs`.
pub(crate) fn run(run: &Run, urls: &Urls) -> Value {
    let (api, html, repo) = (&urls.api, &urls.html, &run.repo);
    json!({
        "id": run.id,
        "name": "CI",
        "node_id": format!("WFR_sim{}", run.id),
        "head_branch": "main",
        "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
        "path": ".github/workflows/ci.yml",
        "display_title": "CI",
        "run_number": run.run_number,
        "event": "push",
        "status": run.status.as_str(),
        "conclusion": run.conclusion.map(|c| c.as_str()),
        "workflow_id": 1,
        "url": format!("{api}/repos/{repo}/actions/runs/{}", run.id),
        "html_url": format!("{html}/{repo}/actions/runs/{}", run.id),
        "jobs_url": format!("{api}/repos/{repo}/actions/runs/{}/jobs", run.id),
        "created_at": run.created_at,
        "updated_at": run.created_at,
        "run_started_at": run.created_at,
        "run_attempt": 1,
        "workflow_url": format!("{api}/repos/{repo}/actions/workflows/1"),
        "logs_url": format!("{api}/repos/{repo}/actions/runs/{}/logs", run.id),
        "check_suite_url": format!("{api}/repos/{repo}/check-suites/{}", run.id),
        "check_suite_id": run.id,
        "check_suite_node_id": format!("CS_sim{}", run.id),
        "cancel_url": format!("{api}/repos/{repo}/actions/runs/{}/cancel", run.id),
        "rerun_url": format!("{api}/repos/{repo}/actions/runs/{}/rerun", run.id),
        "artifacts_url": format!("{api}/repos/{repo}/actions/runs/{}/artifacts", run.id),
        "previous_attempt_url": null,
        "pull_requests": [],
        "referenced_workflows": [],
        "head_commit": {
            "id": "3484a3fb816e0859fd6e1cea078d76385ff50625",
            "tree_id": "1cdf9e2eb4c3e3bd1a6c4c5d0bb12a3e1ffc3a7c",
            "message": "Simulated commit",
            "timestamp": run.created_at,
            "author": {"name": "Sim", "email": "sim@example.com"},
            "committer": {"name": "Sim", "email": "sim@example.com"},
        },
        "repository": repository(repo, urls),
        "head_repository": repository(repo, urls),
    })
}

/// A self-hosted runner as in `GET …/actions/runners/{id}`. `label_ids` maps names to ids.
pub(crate) fn runner(runner: &Runner, implied: &[String], label_id: impl Fn(&str) -> u64) -> Value {
    let labels: Vec<Value> = implied
        .iter()
        .map(|l| (l, "read-only"))
        .chain(runner.labels.iter().map(|l| (l, "custom")))
        .map(|(name, kind)| json!({"id": label_id(name), "name": name, "type": kind}))
        .collect();
    json!({
        "id": runner.id,
        "name": runner.name,
        "os": "Linux",
        "status": if runner.online { "online" } else { "offline" },
        "busy": runner.job_id.is_some(),
        "ephemeral": true,
        "version": RUNNER_VERSION,
        "runner_group_id": runner.runner_group_id,
        "labels": labels,
    })
}

/// GitHub's error body.
pub(crate) fn error(status: u16, message: &str, docs: &str) -> Value {
    json!({
        "message": message,
        "documentation_url": format!("https://docs.github.com/rest{docs}"),
        "status": status.to_string(),
    })
}
