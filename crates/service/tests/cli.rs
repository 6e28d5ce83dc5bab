//! Black-box tests of the binary's configuration handling: exit code 64 with one line naming the
//! key, and `check-config` showing effective values without secrets.

#![allow(clippy::unwrap_used)] // test helpers may panic: a panic is a failed test

mod support;

use support::{dir_with, run, traffic_algo};

#[test]
fn bad_configuration_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // (arguments, environment, text the error must contain)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            &["check-config"],
            &[("ALGO_YOLO_CONFIDENCE", "2")],
            "model.confidence_threshold",
        ),
        (&["check-config", "--port", "x"], &[], "server.port"),
        (&["check-config", "--set", "bogus.key=1"], &[], "bogus.key"),
        (
            &["detect", "x.jpg"],
            &[("ALGO_YOLO_DEVICE", "cuda")],
            "model.device",
        ),
        (&["check-config", "--no-such-flag"], &[], "--no-such-flag"),
    ];
    for (args, env, needle) in cases {
        let mut cmd = traffic_algo(dir.path());
        cmd.args(*args).envs(env.iter().copied());
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
        if !needle.starts_with("--") {
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        }
    }
}

#[test]
fn yaml_errors_exit_64_before_anything_runs() {
    let dir = dir_with("model_config.yaml", "model:\n  confidenc: 0.5\n");
    let out = run(traffic_algo(dir.path()).arg("check-config"));
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.confidenc"));
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_shows_origins_and_redacts_secrets() {
    let dir = dir_with("model_config.yaml", "model:\n  iou_threshold: 0.6\n");
    let out = run(traffic_algo(dir.path())
        .args(["check-config", "--confidence", "0.5"])
        .env("DASHSCOPE_API_KEY", "sk-very-secret")
        .env("ALGO_REDIS_URL", "redis://:hunter2@127.0.0.1:6379")
        .env("ALGO_FRAME_INTERVAL", "2.5"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("sk-very-secret") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(
        text.contains("llm.api_key = <redacted>  # DASHSCOPE_API_KEY"),
        "{text}"
    );
    assert!(
        text.contains("model.confidence_threshold = \"0.5\"  # --confidence"),
        "{text}"
    );
    assert!(
        text.contains("model.iou_threshold = \"0.6\"  # model_config.yaml"),
        "{text}"
    );
    assert!(
        text.contains("stream.frame_interval = \"2.5\"  # ALGO_FRAME_INTERVAL"),
        "{text}"
    );
    assert!(text.contains("server.port = \"5000\"  # default"), "{text}");
    assert!(text.contains("security.auth_token = <unset>"), "{text}");
    assert!(text.contains("# llm: on"), "{text}");
}
