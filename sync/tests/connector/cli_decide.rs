//! `flagbridge decide --cases` as a user runs it: `userId`/`userAttributes` are accepted like
//! `user_id`/`attributes`, and a failed case makes the exit code non-zero at the end.

use std::io::Write;
use std::process::{Command, Stdio};

fn decide(cases: &str) -> std::process::Output {
    let datafile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datafile-fixtures/small.json"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["decide", "--datafile", datafile, "--cases", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn user_id_spellings_decide_the_same() {
    let snake = decide("{\"user_id\": \"u1\", \"attributes\": {\"plan\": \"pro\"}}\n");
    let camel = decide("{\"userId\": \"u1\", \"userAttributes\": {\"plan\": \"pro\"}}\n");
    assert!(snake.status.success(), "{snake:?}");
    assert!(camel.status.success(), "{camel:?}");
    assert!(!snake.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&snake.stdout),
        String::from_utf8_lossy(&camel.stdout)
    );
    assert!(!String::from_utf8_lossy(&camel.stdout).contains("\"error\""));
}

#[test]
fn a_failed_case_fails_the_run_at_the_end() {
    let out = decide("{\"user_id\": \"u1\"}\n{\"flags\": [\"a\"]}\n{\"userId\": \"u3\"}\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // Every case still ran: the third case's decisions follow the error line.
    assert!(
        stdout.contains("{\"case\":1,\"error\":\"user_id must be a string\"}"),
        "{stdout}"
    );
    assert!(stdout.contains("\"case\":2"), "{stdout}");
    assert_eq!(
        stderr.trim(),
        "error: 1 of 3 cases failed (their output lines hold \"error\")"
    );
}
