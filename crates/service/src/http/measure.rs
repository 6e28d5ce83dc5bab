//! The measurement API (SPEC 9): `GET /api/cameras/{id}/counts`, `/movements`, `/speeds` and
//! `GET /api/events`, read from the database. Bins: `since` and `until` (ISO-8601, default the
//! last 24 hours), `bin` (seconds, a multiple of `measurement.bin_seconds`, default that) and
//! `format=json|csv`. JSON rows come in the envelope; CSV is one row per bin x key x class with
//! a header line (columns in docs/measurement.md); both say their bin length in the
//! [`BIN_SECONDS`] header, so a client learns the service's bins from its first answer.
//! Queries run on the blocking pool: a slow database never holds a runtime thread.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use protocol::CameraId;
use serde::Serialize;
use store::{EventFilter, Store, StoreError};

use super::AppState;
use super::error::{error, ok};
use crate::measure::window::tenth;

/// The response header of the binned endpoints that gives the rows' bin length in seconds.
pub const BIN_SECONDS: &str = "x-bin-seconds";

/// The longest span one query may cover, seconds (a year of bins).
pub const MAX_SPAN_SECONDS: i64 = 366 * 86_400;
/// The most events one query returns.
pub const MAX_EVENTS: u32 = 1000;

/// The database and its bin length, when measurement is on.
#[derive(Debug, Clone)]
pub struct MeasureApi {
    /// The database.
    pub store: Store,
    /// `measurement.bin_seconds`.
    pub bin_seconds: u32,
}

/// A query's checked parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    since: i64,
    until: i64,
    bin: i64,
    csv: bool,
}

/// A refused request: its status and message, answered in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// A 400.
fn bad(msg: &str) -> Refused {
    Refused(StatusCode::BAD_REQUEST, msg.to_string())
}

fn time(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, Refused> {
    match params.get(key) {
        None => Ok(None),
        Some(raw) => DateTime::parse_from_rfc3339(raw)
            .map(|t| Some(t.timestamp()))
            .map_err(|_| {
                bad(&format!(
                    "`{key}` must be an ISO-8601 time such as 2026-12-02T08:00:00Z"
                ))
            }),
    }
}

fn format_csv(params: &HashMap<String, String>) -> Result<bool, Refused> {
    match params.get("format").map(String::as_str) {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(bad("`format` must be json or csv")),
    }
}

/// Checks `since`, `until`, `bin` and `format` against the bin length `base`, at `now`.
fn span(params: &HashMap<String, String>, base: u32, now: i64) -> Result<Span, Refused> {
    let until = time(params, "until")?.unwrap_or(now + 1);
    let since = time(params, "since")?.unwrap_or(until - 86_400);
    if since >= until {
        return Err(bad("`since` must be before `until`"));
    }
    if until - since > MAX_SPAN_SECONDS {
        return Err(bad("at most 366 days per query"));
    }
    let base = i64::from(base);
    let bin = match params.get("bin") {
        None => base,
        Some(raw) => match raw.parse::<i64>() {
            Ok(b) if b >= base && b % base == 0 && b <= MAX_SPAN_SECONDS => b,
            _ => {
                return Err(bad(&format!(
                    "`bin` must be a multiple of the bin length ({base} s), in seconds"
                )));
            }
        },
    };
    Ok(Span {
        since,
        until,
        bin,
        csv: format_csv(params)?,
    })
}

/// The camera id of the path.
fn camera(raw: &str) -> Result<CameraId, Refused> {
    raw.parse::<CameraId>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| bad(&format!("`{raw}` is not a camera id")))
}

fn iso(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn iso_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A CSV field: quoted when it holds a separator, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn csv(header_line: &str, rows: impl Iterator<Item = Vec<String>>) -> Response {
    let mut body = String::from(header_line);
    body.push('\n');
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| field(f)).collect();
        body.push_str(&fields.join(","));
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

/// Runs a query on the blocking pool; a database failure is a 503 that names no internals.
async fn query<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Refused> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "measurement query failed");
            Err(Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the measurement database is unavailable".into(),
            ))
        }
        Err(_) => Err(Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the query did not finish".into(),
        )),
    }
}

fn api(state: &AppState) -> Result<MeasureApi, Refused> {
    state.measure.clone().ok_or_else(|| {
        Refused(
            StatusCode::NOT_FOUND,
            "measurement is off (measurement.enabled)".into(),
        )
    })
}

/// A row the API answers with: JSON through serde, CSV by its fields.
trait Row: Serialize {
    /// The CSV header line.
    const HEADER: &'static str;
    /// The CSV fields, in the header's order.
    fn fields(self) -> Vec<String>;
}

/// The rows in the envelope, or as CSV.
fn answer<R: Row>(rows: Vec<R>, csv_out: bool) -> Response {
    if csv_out {
        csv(R::HEADER, rows.into_iter().map(Row::fields))
    } else {
        ok(rows)
    }
}

/// What the binned endpoints share: the camera of the path, the span, the query on the
/// blocking pool (`read`), its rows made answers (`out`).
async fn binned<T: Send + 'static, R: Row>(
    state: &AppState,
    raw: &str,
    params: &HashMap<String, String>,
    read: fn(&Store, CameraId, Span) -> Result<Vec<T>, StoreError>,
    out: fn(T) -> R,
) -> Response {
    let run = async {
        let id = camera(raw)?;
        let api = api(state)?;
        let s = span(params, api.bin_seconds, Utc::now().timestamp())?;
        let rows = query(&api.store, move |db| read(db, id, s)).await?;
        let answer = answer(rows.into_iter().map(out).collect(), s.csv);
        Ok::<_, Refused>(([(BIN_SECONDS, s.bin.to_string())], answer).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// One row of `/counts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CountOut {
    bin_start: String,
    line: String,
    direction: &'static str,
    class: String,
    count: u64,
}

impl Row for CountOut {
    const HEADER: &'static str = "bin_start,line,direction,class,count";
    fn fields(self) -> Vec<String> {
        vec![
            self.bin_start,
            self.line,
            self.direction.to_string(),
            self.class,
            self.count.to_string(),
        ]
    }
}

/// `GET /api/cameras/{id}/counts`.
pub async fn counts(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    binned(
        &state,
        &raw,
        &params,
        |db, id, s| db.counts(id, s.since, s.until, s.bin),
        |r| CountOut {
            bin_start: iso(r.bin_start),
            line: r.line,
            direction: r.direction.as_str(),
            class: r.class,
            count: r.count,
        },
    )
    .await
}

/// One row of `/movements`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MovementOut {
    bin_start: String,
    from: String,
    to: String,
    class: String,
    count: u64,
}

impl Row for MovementOut {
    const HEADER: &'static str = "bin_start,from,to,class,count";
    fn fields(self) -> Vec<String> {
        vec![
            self.bin_start,
            self.from,
            self.to,
            self.class,
            self.count.to_string(),
        ]
    }
}

/// `GET /api/cameras/{id}/movements`.
pub async fn movements(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    binned(
        &state,
        &raw,
        &params,
        |db, id, s| db.movements(id, s.since, s.until, s.bin),
        |r| MovementOut {
            bin_start: iso(r.bin_start),
            from: r.from,
            to: r.to,
            class: r.class,
            count: r.count,
        },
    )
    .await
}

/// One row of `/speeds`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SpeedOut {
    bin_start: String,
    lane: String,
    class: String,
    count: u64,
    mean_kmh: f64,
    median_kmh: f64,
    p85_kmh: f64,
    over_limit_share: f64,
}

impl Row for SpeedOut {
    const HEADER: &'static str =
        "bin_start,lane,class,count,mean_kmh,median_kmh,p85_kmh,over_limit_share";
    fn fields(self) -> Vec<String> {
        vec![
            self.bin_start,
            self.lane,
            self.class,
            self.count.to_string(),
            self.mean_kmh.to_string(),
            self.median_kmh.to_string(),
            self.p85_kmh.to_string(),
            self.over_limit_share.to_string(),
        ]
    }
}

/// `GET /api/cameras/{id}/speeds`.
pub async fn speeds(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    binned(
        &state,
        &raw,
        &params,
        |db, id, s| db.speeds(id, s.since, s.until, s.bin),
        |r| SpeedOut {
            bin_start: iso(r.bin_start),
            lane: r.lane,
            class: r.class,
            count: r.count,
            mean_kmh: tenth(r.mean_kmh),
            median_kmh: tenth(r.median_kmh),
            p85_kmh: tenth(r.p85_kmh),
            over_limit_share: (r.over_limit_share * 1000.0).round() / 1000.0,
        },
    )
    .await
}

/// One row of `/api/events`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EventOut {
    id: String,
    camera_id: CameraId,
    #[serde(rename = "type")]
    kind: String,
    level: String,
    started_at: String,
    ended_at: Option<String>,
    track_ids: Vec<u64>,
    measures: serde_json::Value,
    description: String,
    snapshot: Option<String>,
}

impl Row for EventOut {
    const HEADER: &'static str =
        "id,camera_id,type,level,started_at,ended_at,track_ids,measures,description,snapshot";
    fn fields(self) -> Vec<String> {
        let ids: Vec<String> = self.track_ids.iter().map(u64::to_string).collect();
        vec![
            self.id,
            self.camera_id.to_string(),
            self.kind,
            self.level,
            self.started_at,
            self.ended_at.unwrap_or_default(),
            ids.join(" "),
            self.measures.to_string(),
            self.description,
            self.snapshot.unwrap_or_default(),
        ]
    }
}

/// `GET /api/events`: `cameraId`, `type`, `level`, `since`, `until`, `limit` (default 100, at
/// most [`MAX_EVENTS`]), newest first.
pub async fn events(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let run = async {
        let api = api(&state)?;
        let camera_id = params.get("cameraId").map(|c| camera(c)).transpose()?;
        let level = params.get("level").cloned();
        if let Some(l) = &level
            && !["low", "medium", "high"].contains(&l.as_str())
        {
            return Err(bad("`level` must be low, medium or high"));
        }
        let limit = match params.get("limit") {
            None => 100,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_EVENTS).contains(&n) => n,
                _ => return Err(bad(&format!("`limit` must be 1 to {MAX_EVENTS}"))),
            },
        };
        let csv_out = format_csv(&params)?;
        let filter = EventFilter {
            camera_id,
            kind: params.get("type").cloned(),
            level,
            since: time(&params, "since")?,
            until: time(&params, "until")?,
            limit,
        };
        let rows = query(&api.store, move |db| db.events(&filter)).await?;
        let rows = rows.into_iter().map(|e| EventOut {
            id: e.uid,
            camera_id: e.camera_id,
            kind: e.kind,
            level: e.level,
            started_at: iso_ms(e.started_at_ms),
            ended_at: e.ended_at_ms.map(iso_ms),
            track_ids: e.track_ids,
            measures: e.measures,
            description: e.description,
            snapshot: e.snapshot,
        });
        Ok(answer(rows.collect(), csv_out))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn spans_default_to_the_last_day_in_the_configured_bins() {
        let s = span(&params(&[]), 900, 100_000).expect("valid");
        assert_eq!(
            (s.since, s.until, s.bin, s.csv),
            (100_001 - 86_400, 100_001, 900, false)
        );
        let s = span(
            &params(&[
                ("since", "2026-12-02T00:00:00Z"),
                ("until", "2026-12-02T06:00:00+01:00"),
                ("bin", "3600"),
                ("format", "csv"),
            ]),
            900,
            0,
        )
        .expect("valid");
        assert_eq!(s.until - s.since, 5 * 3600);
        assert_eq!((s.bin, s.csv), (3600, true));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for bad_params in [
            params(&[("bin", "1000")]),
            params(&[("bin", "0")]),
            params(&[("bin", "x")]),
            params(&[("since", "yesterday")]),
            params(&[("format", "xml")]),
            params(&[
                ("since", "2026-12-02T00:00:00Z"),
                ("until", "2026-12-01T00:00:00Z"),
            ]),
            params(&[
                ("since", "2020-01-01T00:00:00Z"),
                ("until", "2026-01-01T00:00:00Z"),
            ]),
        ] {
            let refused = span(&bad_params, 900, 1_800_000_000).expect_err("refused");
            assert_eq!(refused.0, StatusCode::BAD_REQUEST, "{bad_params:?}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
