//! The store against real databases: every case of `cases` and `writer` runs on an embedded
//! SQLite file and on a real PostgreSQL server (`postgres_server`, started by the first test
//! that needs it and stopped when the binary ends), plus what only one backend can show: a SQLite
//! folder that cannot be created, a PostgreSQL server that is not up yet or restarts, and two
//! service instances sharing one PostgreSQL database.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod cases;
mod postgres_server;
mod support;
mod writer;

use store::Direction::In;
use store::{Batch, Store};

use support::{Db, count};

/// Runs each named case (a `fn(Db)`) as one test per backend, in `sqlite::` and `postgres::`.
macro_rules! on_both_backends {
    ($($case:path => $name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { $case(&crate::support::Db::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $name() { $case(&crate::support::Db::postgres()) })*
        }
    };
}

on_both_backends! {
    crate::cases::migrations_are_idempotent_on_reopen => migrations_are_idempotent_on_reopen,
    crate::cases::concurrent_opens_of_a_fresh_database_both_succeed => concurrent_opens_succeed,
    crate::cases::written_rows_read_back => written_rows_read_back,
    crate::cases::writing_again_in_one_run_replaces => writing_again_in_one_run_replaces,
    crate::cases::a_new_run_adds => a_new_run_adds,
    crate::cases::bins_roll_up => bins_roll_up,
    crate::cases::speeds_merge_over_rows_and_runs => speeds_merge_over_rows_and_runs,
    crate::cases::events_filter_limit_and_order => events_filter_limit_and_order,
    crate::cases::pruning_deletes_what_is_older_than_the_retention => pruning,
    crate::cases::odd_text_is_written => odd_text_is_written,
    crate::writer::waiting_rows_merge_and_close_flushes_them => writer_merges_and_close_flushes,
    crate::writer::flushes_write_absolute_values_periodically => writer_flushes_periodically,
    crate::writer::the_writer_prunes_old_rows => the_writer_prunes_old_rows,
}

#[test]
fn sqlite_writer_waits_for_a_database_that_cannot_be_created() {
    writer::sqlite_rows_wait_for_a_database_that_cannot_be_created();
}

#[test]
fn postgres_writer_waits_for_a_server_that_is_not_up_yet() {
    writer::postgres_rows_wait_for_a_server_that_is_not_up_yet();
}

#[test]
fn postgres_writer_reconnects_after_a_restart() {
    writer::postgres_writer_reconnects_after_a_restart();
}

/// Two service instances (two stores, two runs) each writing their own cameras into one
/// PostgreSQL database, each write retried: every camera's totals are its instance's alone.
#[test]
fn postgres_two_instances_share_a_database_without_double_counting() {
    let db = Db::postgres();
    let instances = [db.open(), db.open()];
    let rows = |camera_id: i64, n: u64| Batch {
        counts: vec![store::CountRow {
            camera_id,
            ..count(cases::H, "stop-n", In, "car", n)
        }],
        ..Batch::default()
    };
    std::thread::scope(|scope| {
        for (i, instance) in instances.iter().enumerate() {
            scope.spawn(move || {
                let camera_id = i as i64 + 1;
                for n in 1..=5 {
                    instance
                        .write(&rows(camera_id, n * 10 * camera_id as u64))
                        .unwrap();
                    // A retried write of the same absolute values.
                    instance
                        .write(&rows(camera_id, n * 10 * camera_id as u64))
                        .unwrap();
                }
            });
        }
    });
    let total = |store: &Store, camera_id| -> u64 {
        let rows = store
            .counts(camera_id, cases::H, cases::H + 3600, 3600)
            .unwrap();
        rows.iter().map(|c| c.count).sum()
    };
    for store in &instances {
        assert_eq!((total(store, 1), total(store, 2)), (50, 100));
    }
}
