//! `GET /metrics`: Prometheus text exposition format (version 0.0.4), rendered from a snapshot.

use std::fmt::Write;

/// Per-project numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectMetrics {
    /// Project name (label `project`).
    pub name: String,
    /// Decisions made.
    pub decisions: u64,
    /// Conversions tracked.
    pub conversions: u64,
    /// Current datafile revision.
    pub datafile_revision: Option<String>,
    /// Seconds since the datafile was last fetched or confirmed unchanged.
    pub datafile_age_secs: Option<f64>,
}

/// Event dispatcher numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EventMetrics {
    /// Events queued.
    pub queued: u64,
    /// Events sent (accepted by the event endpoint).
    pub sent: u64,
    /// Events dropped (store full, hand-off full, or after close).
    pub dropped: u64,
    /// Events in the durable store, not yet delivered.
    pub in_store: u64,
    /// Events in requests being sent.
    pub in_flight: u64,
    /// Events set aside as dead letters (4xx, or past the age limit).
    pub dead_lettered: u64,
    /// Retries of event requests.
    pub retries: u64,
    /// Events handed over to the fleet's shared queue (`store:` Redis).
    pub handed_to_fleet: u64,
}

/// Brevo sync numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BrevoMetrics {
    /// Decisions and conversions handed to the Brevo sync.
    pub queued: u64,
    /// Decisions and conversions dropped on the way in (queue full, sync stopped).
    pub dropped: u64,
    /// Retried Brevo calls.
    pub retries: u64,
    /// Successful write calls.
    pub writes: u64,
    /// 429 answers.
    pub too_many_requests: u64,
    /// Updates waiting.
    pub pending: u64,
    /// Updates set aside after permanent failures.
    pub set_aside: u64,
    /// Decisions and conversions not sent to Brevo: the user lacks the identity attribute.
    pub skipped_no_identity: u64,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per project.
    pub projects: Vec<ProjectMetrics>,
    /// Events.
    pub events: EventMetrics,
    /// Brevo.
    pub brevo: BrevoMetrics,
    /// HTTP requests by (route, status).
    pub http_requests: Vec<(String, u16, u64)>,
    /// The fleet's shared store (`store:`), when configured.
    pub store: Option<StoreMetrics>,
}

/// The fleet's shared store (Redis).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMetrics {
    /// Redis answered the last command.
    pub reachable: bool,
    /// Redis commands that failed since the start.
    pub errors: u64,
    /// Records waiting in this instance's local store (contact updates and Brevo events not
    /// yet handed on): they move on when Redis and Brevo answer.
    pub local_backlog: u64,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders a snapshot as Prometheus text.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "flagbridge_decisions_total",
        "counter",
        "Flag decisions made.",
    );
    for p in &s.projects {
        let _ = writeln!(
            out,
            "flagbridge_decisions_total{{project=\"{}\"}} {}",
            escape(&p.name),
            p.decisions
        );
    }
    header(
        &mut out,
        "flagbridge_conversions_total",
        "counter",
        "Conversions tracked.",
    );
    for p in &s.projects {
        let _ = writeln!(
            out,
            "flagbridge_conversions_total{{project=\"{}\"}} {}",
            escape(&p.name),
            p.conversions
        );
    }
    header(
        &mut out,
        "flagbridge_datafile_info",
        "gauge",
        "Current datafile revision (always 1).",
    );
    for p in &s.projects {
        if let Some(rev) = &p.datafile_revision {
            let _ = writeln!(
                out,
                "flagbridge_datafile_info{{project=\"{}\",revision=\"{}\"}} 1",
                escape(&p.name),
                escape(rev)
            );
        }
    }
    header(
        &mut out,
        "flagbridge_datafile_revision",
        "gauge",
        "Current datafile revision number.",
    );
    for p in &s.projects {
        if let Some(rev) = p
            .datafile_revision
            .as_deref()
            .and_then(|r| r.parse::<f64>().ok())
        {
            let _ = writeln!(
                out,
                "flagbridge_datafile_revision{{project=\"{}\"}} {rev}",
                escape(&p.name)
            );
        }
    }
    header(
        &mut out,
        "flagbridge_datafile_age_seconds",
        "gauge",
        "Seconds since the datafile was last fetched or confirmed.",
    );
    for p in &s.projects {
        if let Some(age) = p.datafile_age_secs {
            let _ = writeln!(
                out,
                "flagbridge_datafile_age_seconds{{project=\"{}\"}} {age:.3}",
                escape(&p.name)
            );
        }
    }
    let e = &s.events;
    for (name, help, v) in [
        (
            "flagbridge_events_queued_total",
            "Events queued for Optimizely.",
            e.queued,
        ),
        (
            "flagbridge_events_sent_total",
            "Events accepted by the event endpoint.",
            e.sent,
        ),
        (
            "flagbridge_events_dropped_total",
            "Events dropped (store full, hand-off full, or after close).",
            e.dropped,
        ),
        (
            "flagbridge_events_dead_lettered_total",
            "Events set aside as dead letters (4xx, or past the age limit).",
            e.dead_lettered,
        ),
        (
            "flagbridge_events_retries_total",
            "Retries of event requests.",
            e.retries,
        ),
        (
            "flagbridge_events_handed_to_fleet_total",
            "Events handed over to the fleet's shared queue in Redis (any replica posts them).",
            e.handed_to_fleet,
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    for (name, help, v) in [
        (
            "flagbridge_events_in_store",
            "Events in the durable store, not yet delivered.",
            e.in_store,
        ),
        (
            "flagbridge_events_in_flight",
            "Events in requests being sent.",
            e.in_flight,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let b = &s.brevo;
    for (name, kind, help, v) in [
        (
            "flagbridge_brevo_queued_total",
            "counter",
            "Decisions and conversions handed to the Brevo sync.",
            b.queued,
        ),
        (
            "flagbridge_brevo_dropped_total",
            "counter",
            "Decisions and conversions dropped before the Brevo sync took them (queue full, sync stopped).",
            b.dropped,
        ),
        (
            "flagbridge_brevo_retries_total",
            "counter",
            "Brevo calls retried.",
            b.retries,
        ),
        (
            "flagbridge_brevo_writes_total",
            "counter",
            "Successful Brevo write calls.",
            b.writes,
        ),
        (
            "flagbridge_brevo_429_total",
            "counter",
            "Brevo 429 answers.",
            b.too_many_requests,
        ),
        (
            "flagbridge_brevo_pending",
            "gauge",
            "Contact updates waiting for Brevo.",
            b.pending,
        ),
        (
            "flagbridge_brevo_set_aside",
            "gauge",
            "Contact updates set aside after permanent failures.",
            b.set_aside,
        ),
        (
            "flagbridge_brevo_skipped_no_identity_total",
            "counter",
            "Decisions and conversions not sent to Brevo: the user lacks the identity attribute.",
            b.skipped_no_identity,
        ),
    ] {
        header(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
    if let Some(st) = &s.store {
        for (name, kind, help, v) in [
            (
                "flagbridge_store_redis_up",
                "gauge",
                "1 when the fleet's Redis answered the last command, else 0.",
                u64::from(st.reachable),
            ),
            (
                "flagbridge_store_redis_errors_total",
                "counter",
                "Redis commands that failed (unreachable, timeout).",
                st.errors,
            ),
            (
                "flagbridge_store_local_backlog",
                "gauge",
                "Records waiting in this instance's local store for Redis or Brevo.",
                st.local_backlog,
            ),
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    header(
        &mut out,
        "flagbridge_http_requests_total",
        "counter",
        "HTTP requests served.",
    );
    for (route, status, n) in &s.http_requests {
        let _ = writeln!(
            out,
            "flagbridge_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            escape(route)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_escapes_labels() {
        let s = Snapshot {
            projects: vec![ProjectMetrics {
                name: "we\"b".into(),
                decisions: 1000,
                conversions: 3,
                datafile_revision: Some("42".into()),
                datafile_age_secs: Some(1.5),
            }],
            events: EventMetrics {
                queued: 10,
                sent: 9,
                dropped: 1,
                in_store: 3,
                in_flight: 2,
                dead_lettered: 0,
                retries: 5,
                handed_to_fleet: 8,
            },
            brevo: BrevoMetrics {
                queued: 11,
                dropped: 3,
                retries: 6,
                writes: 4,
                too_many_requests: 2,
                pending: 7,
                set_aside: 0,
                skipped_no_identity: 5,
            },
            http_requests: vec![("/v1/decide".into(), 200, 1000)],
            store: Some(StoreMetrics {
                reachable: false,
                errors: 3,
                local_backlog: 12,
            }),
        };
        let text = render(&s);
        for line in [
            "flagbridge_decisions_total{project=\"we\\\"b\"} 1000",
            "flagbridge_datafile_revision{project=\"we\\\"b\"} 42",
            "flagbridge_datafile_info{project=\"we\\\"b\",revision=\"42\"} 1",
            "flagbridge_datafile_age_seconds{project=\"we\\\"b\"} 1.500",
            "flagbridge_events_dropped_total 1",
            "flagbridge_events_in_store 3",
            "# TYPE flagbridge_events_in_flight gauge",
            "flagbridge_events_retries_total 5",
            "flagbridge_events_handed_to_fleet_total 8",
            "flagbridge_brevo_429_total 2",
            "flagbridge_brevo_queued_total 11",
            "flagbridge_brevo_dropped_total 3",
            "flagbridge_brevo_retries_total 6",
            "flagbridge_brevo_pending 7",
            "flagbridge_brevo_skipped_no_identity_total 5",
            "# TYPE flagbridge_brevo_pending gauge",
            "flagbridge_http_requests_total{route=\"/v1/decide\",status=\"200\"} 1000",
            "flagbridge_store_redis_up 0",
            "flagbridge_store_redis_errors_total 3",
            "flagbridge_store_local_backlog 12",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // Every sample line belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{l}");
            }
        }
    }
}
