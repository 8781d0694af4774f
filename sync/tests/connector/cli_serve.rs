//! `flagbridge serve --listen` as a user types it: a host name works, a busy port names
//! `--listen`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fb-cli-serve-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Also: the start-up logs of a Brevo dry run say "would", never that attributes were created.
#[test]
fn listen_accepts_localhost() {
    let dir = temp_dir("localhost");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["serve", "--listen", "localhost:0"])
        .current_dir(&dir)
        .env_remove("FLAGBRIDGE_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap_or(0) > 0 {
        seen.push_str(&line);
        if let Some(rest) = line
            .trim()
            .strip_prefix("flagbridge serve: listening on http://")
        {
            addr = Some(rest.to_string());
            break;
        }
        line.clear();
    }
    let addr = addr.unwrap_or_else(|| panic!("no listening line in:\n{seen}"));
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(seen.contains("attribute would be created"), "{seen}");
    assert!(!seen.contains("brevo attribute created"), "{seen}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn busy_port_names_listen() {
    let dir = temp_dir("busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["serve", "--listen", &format!("localhost:{port}")])
        .current_dir(&dir)
        .env_remove("FLAGBRIDGE_CONFIG")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!("error: --listen 127.0.0.1:{port}: cannot bind: ");
    assert!(stderr.contains(&want), "{stderr}");
    assert!(
        stderr.contains("pick a free one with --listen HOST:PORT"),
        "{stderr}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_flagbridge"))
        .args(["serve", "--listen", "no-port-here"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}
