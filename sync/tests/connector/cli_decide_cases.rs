//! `flagbridge decide --cases` prints the lines of the case runner that the conformance test
//! (`engine/tests/conformance/`) compares with the JavaScript SDK's goldens; an invalid or
//! missing datafile exits with 2; cases may come on stdin.

use std::path::{Path, PathBuf};
use std::process::Command;

use flagbridge_engine::ProjectConfig;
use flagbridge_sync::connector::cli::cases::run_cases;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sync/ has a parent")
        .join("datafile-fixtures")
}

#[test]
fn binary_decides_a_cases_file() {
    let dir = fixtures();
    let datafile = dir.join("experiments.json");
    let cases = dir.join("cases/experiments.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .arg("decide")
        .arg("--datafile")
        .arg(&datafile)
        .arg("--cases")
        .arg(&cases)
        .output()
        .expect("flagbridge runs");
    // The file holds malformed cases on purpose: every case runs, then the exit code is 1.
    assert_eq!(
        output.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    // Same lines as the library function (which the conformance test checks against JS).
    let config =
        ProjectConfig::parse(&std::fs::read_to_string(&datafile).expect("datafile")).expect("ok");
    let expected = run_cases(
        &config,
        &std::fs::read_to_string(&cases).expect("cases readable"),
    );
    assert_eq!(lines, expected);
    assert!(lines.iter().any(|l| l.get("error").is_some()));
    assert!(lines.iter().any(|l| l.get("type").is_some()));
}

#[test]
fn binary_rejects_an_invalid_datafile_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("flagbridge-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"version\": \"4\", \"accountId\": ").expect("write");
    for datafile in [bad.clone(), dir.join("missing.json")] {
        let output = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
            .args(["decide", "--cases", "-"])
            .arg("--datafile")
            .arg(&datafile)
            .output()
            .expect("flagbridge runs");
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&*datafile.to_string_lossy()),
            "message names the file: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn binary_reads_cases_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let datafile = fixtures().join("rollouts.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["decide", "--cases", "-", "--datafile"])
        .arg(&datafile)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flagbridge runs");
    let cases = "{\"user_id\": \"u1\", \"attributes\": {\"plan\": \"beta\"}, \"flags\": [\"f_ee_only\"]}\n\nnot json\n";
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(cases.as_bytes())
        .expect("write cases");
    let output = child.wait_with_output().expect("flagbridge exits");
    // "not json" is a failed case: reported on its line, and in the exit code at the end.
    assert_eq!(output.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["case"], 0);
    assert_eq!(lines[0]["flag_key"], "f_ee_only");
    assert_eq!(lines[0]["variation_key"], "all_on");
    assert_eq!(lines[1]["case"], 1);
    assert!(lines[1]["error"].is_string());
}
