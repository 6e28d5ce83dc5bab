//! The store's writing SQL, written once for both backends: a batch's rows as upserts of this
//! run's absolute values (a row written again replaces the run's row of its key).

use crate::error::StoreError;
use crate::rows::{Batch, CountRow, EventRow, MovementRow, SpeedRow};
use crate::sql::{Sql, Statement, Value};

const UPSERT_COUNT: Statement<'static> = Statement {
    action: "writing counts",
    sql: "INSERT INTO counts (camera_id, bin_start, line, direction, class, run, count)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT (camera_id, bin_start, line, direction, class, run)
          DO UPDATE SET count = excluded.count",
};

const UPSERT_MOVEMENT: Statement<'static> = Statement {
    action: "writing movements",
    sql: "INSERT INTO movements (camera_id, bin_start, from_zone, to_zone, class, run, count)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT (camera_id, bin_start, from_zone, to_zone, class, run)
          DO UPDATE SET count = excluded.count",
};

const UPSERT_SPEED: Statement<'static> = Statement {
    action: "writing speeds",
    sql: "INSERT INTO speeds
              (camera_id, bin_start, lane, class, run, count, sum_kmh, over_limit, histogram)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT (camera_id, bin_start, lane, class, run)
          DO UPDATE SET count = excluded.count, sum_kmh = excluded.sum_kmh,
              over_limit = excluded.over_limit, histogram = excluded.histogram",
};

const UPSERT_EVENT: Statement<'static> = Statement {
    action: "writing events",
    sql: "INSERT INTO events (uid, camera_id, kind, level, started_at, ended_at, track_ids,
              measures, description, snapshot)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT (uid) DO UPDATE SET camera_id = excluded.camera_id,
              kind = excluded.kind, level = excluded.level, started_at = excluded.started_at,
              ended_at = excluded.ended_at, track_ids = excluded.track_ids,
              measures = excluded.measures, description = excluded.description,
              snapshot = excluded.snapshot",
};

/// Writes the batch's rows as this run's values.
pub(crate) fn write(sql: &mut dyn Sql, run: &str, batch: &Batch) -> Result<(), StoreError> {
    let counts = batch.counts.iter().map(|r| count(run, r)).collect();
    let movements = batch.movements.iter().map(|r| movement(run, r)).collect();
    let speeds = batch.speeds.iter().map(|r| speed(run, r)).collect();
    let events = batch.events.iter().map(event).collect();
    for (statement, rows) in [
        (UPSERT_COUNT, counts),
        (UPSERT_MOVEMENT, movements),
        (UPSERT_SPEED, speeds),
        (UPSERT_EVENT, events),
    ] {
        let rows: Vec<Vec<Value>> = rows;
        if !rows.is_empty() {
            sql.execute(statement, &rows)?;
        }
    }
    Ok(())
}

fn count(run: &str, r: &CountRow) -> Vec<Value> {
    vec![
        r.camera_id.into(),
        r.bin_start.into(),
        r.line.as_str().into(),
        r.direction.as_str().into(),
        r.class.as_str().into(),
        run.into(),
        r.count.into(),
    ]
}

fn movement(run: &str, r: &MovementRow) -> Vec<Value> {
    vec![
        r.camera_id.into(),
        r.bin_start.into(),
        r.from.as_str().into(),
        r.to.as_str().into(),
        r.class.as_str().into(),
        run.into(),
        r.count.into(),
    ]
}

fn speed(run: &str, r: &SpeedRow) -> Vec<Value> {
    let h = &r.histogram;
    vec![
        r.camera_id.into(),
        r.bin_start.into(),
        r.lane.as_str().into(),
        r.class.as_str().into(),
        run.into(),
        h.count().into(),
        h.sum_kmh().into(),
        h.over_limit().into(),
        h.to_text().into(),
    ]
}

fn event(e: &EventRow) -> Vec<Value> {
    vec![
        e.uid.as_str().into(),
        e.camera_id.into(),
        e.kind.as_str().into(),
        e.level.as_str().into(),
        e.started_at_ms.into(),
        e.ended_at_ms.into(),
        json(&e.track_ids).into(),
        json(&e.measures).into(),
        e.description.as_str().into(),
        e.snapshot.clone().into(),
    ]
}

/// JSON text of a value that always serializes (numbers, JSON values).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
