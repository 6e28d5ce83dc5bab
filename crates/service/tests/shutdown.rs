//! Black-box tests of how `traffic-algo serve` stops on SIGTERM: idle, it exits 0 at once.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use support::{SECS, Service};

#[test]
fn sigterm_stops_the_service_cleanly() {
    let mut service = Service::start(&[]);
    assert_eq!(service.terminate(SECS(10)), Some(0));
}
