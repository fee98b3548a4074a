//! The read-only status page served at `/` of the metrics listener: the numbers of
//! `shr status`, a small chart of recent job startup times, and a reload every few seconds.
//! Plain HTML with inline CSS and SVG: no script, readable on a phone.
//!
//! Every number carries an `id` (`jobs-queued`, `runners-busy`, …) so tests and scrapers can
//! find it.

use std::fmt::Write as _;

use crate::status::Snapshot;

/// How often the page reloads itself, in seconds.
pub const REFRESH_SECS: u32 = 5;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ago(now: i64, at: Option<i64>) -> String {
    match at {
        Some(at) => format!("{}s ago", (now - at).max(0) / 1000),
        None => "never".into(),
    }
}

/// The bar chart of recent startups, as inline SVG.
fn chart(snap: &Snapshot) -> String {
    let samples = &snap.recent_startups;
    if samples.is_empty() {
        return "<p class=\"muted\" id=\"startup-chart-empty\">No job has started yet.</p>".into();
    }
    let (w, h) = (300.0_f64, 100.0_f64);
    let max = samples.iter().map(|s| s.secs).fold(1.0_f64, f64::max);
    let bar = w / samples.len() as f64;
    let mut svg = format!(
        "<svg id=\"startup-chart\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"job startup seconds\">",
        h + 14.0
    );
    for (i, s) in samples.iter().enumerate() {
        let bh = (s.secs / max * h).max(1.0);
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>job {}: {:.1}s</title></rect>",
            i as f64 * bar + 0.5,
            h - bh,
            (bar - 1.0).max(0.5),
            s.job_id,
            s.secs
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" class=\"axis\">max {max:.1}s · {} jobs</text></svg>",
        h + 12.0,
        samples.len()
    );
    svg
}

/// The whole page.
pub fn render(snap: &Snapshot) -> String {
    let now = snap.generated_at;
    let mut body = String::new();
    let _ = write!(body, "<section><h2>Jobs</h2><table class=\"kv\">");
    for (state, n) in &snap.jobs {
        let _ = write!(
            body,
            "<tr><th>{}</th><td id=\"jobs-{}\">{n}</td></tr>",
            esc(state),
            esc(state)
        );
    }
    let oldest = match &snap.oldest_queued {
        Some(o) => format!(
            "job {} ({}/{}), {}s",
            o.job_id,
            esc(&o.tenant),
            esc(&o.registration),
            o.age_secs
        ),
        None => "none".into(),
    };
    let _ = write!(
        body,
        "<tr><th>oldest queued</th><td id=\"oldest-queued\">{oldest}</td></tr></table></section>"
    );
    let _ = write!(body, "<section><h2>Runners</h2><table class=\"kv\">");
    for (state, n) in &snap.runners {
        let _ = write!(
            body,
            "<tr><th>{}</th><td id=\"runners-{}\">{n}</td></tr>",
            esc(state),
            esc(state)
        );
    }
    let _ = write!(body, "</table>");
    if !snap.pending_force_delete.is_empty() {
        let _ = write!(
            body,
            "<p class=\"alert\" id=\"pending-force-delete\">Deletes keep failing for: {}</p>",
            esc(&snap.pending_force_delete.join(", "))
        );
    }
    let _ = write!(body, "</section>");
    let _ = write!(
        body,
        "<section><h2>Job startup (queued → in progress)</h2>{}</section>",
        chart(snap)
    );
    let _ = write!(
        body,
        "<section><h2>Tenants</h2><table><tr><th>tenant</th><th>registrations</th><th>queued</th><th>in progress</th><th>live runners</th></tr>"
    );
    for t in &snap.tenants {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td id=\"tenant-{}-queued\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.name),
            esc(&t.registrations.join(", ")),
            esc(&t.name),
            t.jobs_queued,
            t.jobs_in_progress,
            t.runners_live
        );
    }
    let _ = write!(body, "</table></section>");
    let _ = write!(
        body,
        "<section><h2>Registrations</h2><table><tr><th>registration</th><th>admitted</th><th>declined</th><th>last poll</th><th>GitHub budget</th></tr>"
    );
    for r in &snap.registrations {
        let budget = match (r.rate_remaining, r.rate_limit) {
            (Some(rem), Some(limit)) => format!("{rem} / {limit}"),
            _ => "–".into(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td id=\"budget-{}\">{budget}</td></tr>",
            esc(&r.name),
            r.jobs_admitted,
            r.jobs_declined,
            ago(now, r.last_poll_at),
            esc(&r.name)
        );
    }
    let _ = write!(
        body,
        "</table><p>Last webhook: <span id=\"last-webhook\">{}</span></p></section>",
        ago(now, snap.last_webhook_at)
    );
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
<title>shr status</title><style>{CSS}</style></head><body>\
<header><h1>serverless-hosted-runner</h1><p class=\"muted\">read-only status · refreshes every {REFRESH_SECS}s · \
<a href=\"/metrics\">metrics</a> · <a href=\"/status.json\">json</a></p></header>\
<main>{body}</main></body></html>"
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:12px;background:#f6f7f9;color:#1d2330}\
h1{font-size:1.25rem;margin:0}h2{font-size:1rem;margin:0 0 8px}\
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:12px;margin-top:12px}\
section{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 2px #0002;overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eee}\
table.kv td{text-align:right;font-variant-numeric:tabular-nums}\
.muted{color:#667;font-size:.85rem;margin:2px 0}.alert{color:#a40000;font-weight:600}\
svg{width:100%;height:auto}.bar{fill:#3b7ddd}.axis{font-size:9px;fill:#667}\
@media(max-width:480px){body{padding:8px}section{padding:8px}table{font-size:.8rem}th,td{padding:3px}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Startup, TenantStatus};

    #[test]
    fn the_page_shows_every_count_with_an_id_and_escapes_names() {
        let mut snap = Snapshot {
            generated_at: 10_000,
            ..Snapshot::default()
        };
        snap.jobs.insert("queued".into(), 7);
        snap.runners.insert("busy".into(), 3);
        snap.tenants.push(TenantStatus {
            name: "<x>".into(),
            ..TenantStatus::default()
        });
        snap.recent_startups.push(Startup {
            job_id: 1,
            started_at: 5,
            secs: 2.0,
        });
        let html = render(&snap);
        assert!(html.contains("<td id=\"jobs-queued\">7</td>"), "{html}");
        assert!(html.contains("<td id=\"runners-busy\">3</td>"));
        assert!(html.contains("&lt;x&gt;") && !html.contains("<x>"));
        assert!(html.contains("id=\"startup-chart\""));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(html.contains("width=device-width"));
        assert!(!html.contains("<script"), "no script on the page");
    }
}
