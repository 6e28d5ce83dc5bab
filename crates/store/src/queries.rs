//! The store's reading SQL, written once for both backends: the bin queries (summed over runs,
//! rolled up into the bins asked for), the event listing, and pruning.

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::histogram::SpeedHistogram;
use crate::rows::{CountBin, Direction, EventFilter, EventRow, MovementBin, SpeedBin};
use crate::sql::{Columns, Sql, Statement, Value};

const COUNTS: Statement<'static> = Statement {
    action: "reading counts",
    sql: "SELECT (bin_start / ?) * ?, line, direction, class, CAST(SUM(count) AS BIGINT)
          FROM counts WHERE camera_id = ? AND bin_start >= ? AND bin_start < ?
          GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
};

const MOVEMENTS: Statement<'static> = Statement {
    action: "reading movements",
    sql: "SELECT (bin_start / ?) * ?, from_zone, to_zone, class, CAST(SUM(count) AS BIGINT)
          FROM movements WHERE camera_id = ? AND bin_start >= ? AND bin_start < ?
          GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
};

const SPEEDS: Statement<'static> = Statement {
    action: "reading speeds",
    sql: "SELECT (bin_start / ?) * ?, lane, class, sum_kmh, over_limit, histogram
          FROM speeds WHERE camera_id = ? AND bin_start >= ? AND bin_start < ?",
};

const EVENT_COLUMNS: &str = "SELECT uid, camera_id, kind, level, started_at, ended_at, \
    track_ids, measures, description, snapshot FROM events";

/// The deletes of pruning, with the units of their time column per second.
const PRUNE: [(Statement<'static>, i64); 4] = [
    (
        Statement {
            action: "pruning counts",
            sql: "DELETE FROM counts WHERE bin_start < ?",
        },
        1,
    ),
    (
        Statement {
            action: "pruning movements",
            sql: "DELETE FROM movements WHERE bin_start < ?",
        },
        1,
    ),
    (
        Statement {
            action: "pruning speeds",
            sql: "DELETE FROM speeds WHERE bin_start < ?",
        },
        1,
    ),
    (
        Statement {
            action: "pruning events",
            sql: "DELETE FROM events WHERE started_at < ?",
        },
        1000,
    ),
];

/// Which bins a query reads: one camera's rows with `since <= bin_start < until` (unix
/// seconds), rolled up into bins of `bin` seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinRange {
    pub(crate) camera_id: i64,
    pub(crate) since: i64,
    pub(crate) until: i64,
    pub(crate) bin: i64,
}

impl BinRange {
    fn params(self) -> Result<[Value; 5], StoreError> {
        if self.bin <= 0 {
            return Err(StoreError::InvalidQuery(
                "the bin must be a positive number of seconds",
            ));
        }
        Ok([self.bin, self.bin, self.camera_id, self.since, self.until].map(Value::from))
    }
}

/// Line crossings per bin, line, direction and class.
pub(crate) fn counts(sql: &mut dyn Sql, range: BinRange) -> Result<Vec<CountBin>, StoreError> {
    let rows = sql.query(COUNTS, &range.params()?)?;
    rows.into_iter()
        .map(|row| {
            let mut c = Columns::new(row, "counts");
            let (bin_start, line, direction) = (c.int()?, c.text()?, c.text()?);
            let direction = Direction::parse(&direction).ok_or_else(|| StoreError::Corrupt {
                what: "count direction",
                message: format!("{direction:?} is neither \"in\" nor \"out\""),
            })?;
            Ok(CountBin {
                bin_start,
                line,
                direction,
                class: c.text()?,
                count: c.count()?,
            })
        })
        .collect()
}

/// Zone-to-zone trips per bin, zones and class.
pub(crate) fn movements(
    sql: &mut dyn Sql,
    range: BinRange,
) -> Result<Vec<MovementBin>, StoreError> {
    let rows = sql.query(MOVEMENTS, &range.params()?)?;
    rows.into_iter()
        .map(|row| {
            let mut c = Columns::new(row, "movements");
            Ok(MovementBin {
                bin_start: c.int()?,
                from: c.text()?,
                to: c.text()?,
                class: c.text()?,
                count: c.count()?,
            })
        })
        .collect()
}

/// Lane speeds per bin, lane and class: the histograms of all runs and rows merged.
pub(crate) fn speeds(sql: &mut dyn Sql, range: BinRange) -> Result<Vec<SpeedBin>, StoreError> {
    let mut merged: BTreeMap<(i64, String, String), SpeedHistogram> = BTreeMap::new();
    for row in sql.query(SPEEDS, &range.params()?)? {
        let mut c = Columns::new(row, "speeds");
        let key = (c.int()?, c.text()?, c.text()?);
        let (sum_kmh, over_limit) = (c.real()?, c.count()?);
        let histogram = SpeedHistogram::from_text(&c.text()?)
            .map_err(|e| StoreError::Corrupt {
                what: "speed histogram",
                message: e.to_string(),
            })?
            .with_totals(sum_kmh, over_limit);
        merged.entry(key).or_default().merge(&histogram);
    }
    Ok(merged
        .into_iter()
        .filter(|(_, h)| h.count() > 0)
        .map(|((bin_start, lane, class), h)| SpeedBin {
            bin_start,
            lane,
            class,
            count: h.count(),
            mean_kmh: h.mean().unwrap_or(0.0),
            median_kmh: h.percentile(50.0).unwrap_or(0.0),
            p85_kmh: h.percentile(85.0).unwrap_or(0.0),
            over_limit_share: h.over_limit_share().unwrap_or(0.0),
        })
        .collect())
}

/// The events the filter lets through, newest first.
pub(crate) fn events(sql: &mut dyn Sql, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    let mut add = |condition: &'static str, value: Option<Value>| {
        if let Some(value) = value {
            conditions.push(condition);
            params.push(value);
        }
    };
    add("camera_id = ?", filter.camera_id.map(Value::from));
    add("kind = ?", filter.kind.clone().map(Value::from));
    add("level = ?", filter.level.clone().map(Value::from));
    add(
        "started_at >= ?",
        filter.since.map(|s| Value::from(s.saturating_mul(1000))),
    );
    add(
        "started_at < ?",
        filter.until.map(|s| Value::from(s.saturating_mul(1000))),
    );
    let mut text = EVENT_COLUMNS.to_string();
    if !conditions.is_empty() {
        text.push_str(" WHERE ");
        text.push_str(&conditions.join(" AND "));
    }
    text.push_str(" ORDER BY started_at DESC, uid DESC LIMIT ?");
    params.push(i64::from(filter.limit).into());
    let statement = Statement {
        action: "reading events",
        sql: &text,
    };
    sql.query(statement, &params)?
        .into_iter()
        .map(|row| {
            let mut c = Columns::new(row, "events");
            let corrupt = |what| {
                move |e: serde_json::Error| StoreError::Corrupt {
                    what,
                    message: e.to_string(),
                }
            };
            Ok(EventRow {
                uid: c.text()?,
                camera_id: c.int()?,
                kind: c.text()?,
                level: c.text()?,
                started_at_ms: c.int()?,
                ended_at_ms: c.opt_int()?,
                track_ids: serde_json::from_str(&c.text()?).map_err(corrupt("event track ids"))?,
                measures: serde_json::from_str(&c.text()?).map_err(corrupt("event measures"))?,
                description: c.text()?,
                snapshot: c.opt_text()?,
            })
        })
        .collect()
}

/// Deletes bins that start, and events that started, before `cutoff_unix`; rows deleted.
pub(crate) fn prune(sql: &mut dyn Sql, cutoff_unix: i64) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for (statement, per_second) in PRUNE {
        let cutoff = cutoff_unix.saturating_mul(per_second);
        deleted += sql.execute(statement, &[vec![cutoff.into()]])?;
    }
    Ok(deleted)
}
