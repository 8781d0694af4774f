//! The SQLite event store: round trips, compression, dead letters, old files, the lock.

use super::*;

#[test]
fn segments_round_trip_and_dead_letters_resend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let mut store = EventStore::open(&path).unwrap();
    let ctx = store
        .context_id("http://x/v1/events", b"{\"a\":1}")
        .unwrap();
    assert_eq!(
        store
            .context_id("http://x/v1/events", b"{\"a\":1}")
            .unwrap(),
        ctx
    );
    let ids = store
        .insert_segments(&[(ctx, 2, 10, b"{},{}"), (ctx, 1, 11, b"{}")])
        .unwrap();
    assert_eq!(ids.len(), 2);
    store.dead_letter(&ids[..1], 20, 400, "bad").unwrap();
    store.delete_segments(&ids[1..]).unwrap();
    assert!(store.segments().unwrap().is_empty());
    let dead = store.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].events, dead[0].status), (2, 400));
    drop(store);

    let mut store = EventStore::open(&path).unwrap();
    assert_eq!(store.resend_dead_letters(None, 30).unwrap(), 2);
    let segments = store.segments().unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!((segments[0].count, segments[0].created_ms), (2, 30));
    assert_eq!(
        store.segment_body(segments[0].id).unwrap().unwrap(),
        b"{},{}"
    );
    assert!(store.dead_letters().unwrap().is_empty());
    assert_eq!(
        store.segment_body(ids[1]).unwrap(),
        None,
        "a deleted segment"
    );
}

/// `n` bytes that LZ4 cannot shrink (so they are stored as they are).
fn incompressible(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// Impression-like JSON: the same keys and ids over and over, as real segments are.
fn visitors(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"visitor_id":"user-{i}","attributes":[{{"entity_id":"11","key":"plan","type":"custom","value":"pro"}}],"snapshots":[{{"decisions":[{{"campaign_id":"103","experiment_id":"104","variation_id":"105"}}],"events":[{{"entity_id":"103","type":"campaign_activated","uuid":"{i:08x}","timestamp":{}}}]}}]}}"#,
                1_764_800_000_000u64 + i as u64
            )
        })
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

fn stored_lengths(store: &EventStore, table: &str, id: i64) -> (i64, Option<i64>) {
    store
        .conn
        .query_row(
            &format!("SELECT length(body), raw_bytes FROM {table} WHERE id = ?1"),
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// Repetitive bodies are stored compressed with their length, and come back whole from
/// the queue and through a dead letter and its resend; bodies LZ4 cannot shrink are
/// stored as they are.
#[test]
fn compressible_bodies_are_stored_compressed_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EventStore::open(&dir.path().join("events.sqlite")).unwrap();
    let ctx = store.context_id("http://x/v1/events", b"{}").unwrap();
    let (json, noise) = (visitors(500), incompressible(5_000));
    let ids = store
        .insert_segments(&[(ctx, 500, 1, &json), (ctx, 1, 2, &noise)])
        .unwrap();
    let (on_disk, raw) = stored_lengths(&store, "event_segments", ids[0]);
    assert_eq!(raw, Some(json.len() as i64));
    assert!(
        on_disk * 5 < json.len() as i64,
        "{on_disk} of {}",
        json.len()
    );
    assert_eq!(
        stored_lengths(&store, "event_segments", ids[1]),
        (noise.len() as i64, None)
    );
    let bytes: Vec<usize> = store.segments().unwrap().iter().map(|s| s.bytes).collect();
    assert_eq!(
        bytes,
        [json.len(), noise.len()],
        "lengths before compression"
    );
    assert_eq!(store.segment_body(ids[0]).unwrap().unwrap(), json);
    assert_eq!(store.segment_body(ids[1]).unwrap().unwrap(), noise);

    store.dead_letter(&ids, 3, 400, "bad").unwrap();
    assert_eq!(
        stored_lengths(&store, "event_dead_letters", ids[0]),
        (on_disk, raw)
    );
    assert_eq!(store.resend_dead_letters(None, 4).unwrap(), 501);
    let back: Vec<Vec<u8>> = store
        .segments()
        .unwrap()
        .iter()
        .map(|s| store.segment_body(s.id).unwrap().unwrap())
        .collect();
    assert_eq!(back, [json, noise]);
}

/// A body that no longer decompresses is an error naming the row, not a wrong body.
#[test]
fn a_damaged_compressed_body_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EventStore::open(&dir.path().join("events.sqlite")).unwrap();
    let ctx = store.context_id("http://x/v1/events", b"{}").unwrap();
    let body = visitors(200);
    let ids = store
        .insert_segments(&[(ctx, 200, 1, &body), (ctx, 200, 1, &body)])
        .unwrap();
    for (id, damage) in [
        (ids[0], "body = substr(body, 1, length(body) / 2)"),
        (ids[1], "raw_bytes = raw_bytes * 2"),
    ] {
        store
            .conn
            .execute(
                &format!("UPDATE event_segments SET {damage} WHERE id = ?1"),
                params![id],
            )
            .unwrap();
        match store.segment_body(id) {
            Err(EventStoreError::Corrupt { id: named, .. }) => assert_eq!(named, id),
            other => panic!("{damage}: expected Corrupt, got {other:?}"),
        }
    }
}

/// A file made before bodies were compressed (no `raw_bytes` column) gets the column on
/// open; its rows read back as they were stored, and new rows are compressed.
#[test]
fn a_store_from_before_compression_is_read_and_extended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let old_schema = SCHEMA.replace(",\n    raw_bytes  INTEGER", "");
    assert!(!old_schema.contains("raw_bytes"));
    let json = visitors(300);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&old_schema).unwrap();
        conn.execute(
            "INSERT INTO event_contexts (id, endpoint, envelope) VALUES (1, 'http://x', x'7b7d')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO event_segments (context, count, created_ms, body) VALUES (1, 300, 5, ?1)",
            params![json],
        )
        .unwrap();
    }
    let mut store = EventStore::open(&path).unwrap();
    let old = store.segments().unwrap();
    assert_eq!((old.len(), old[0].bytes), (1, json.len()));
    assert_eq!(store.segment_body(old[0].id).unwrap().unwrap(), json);
    let new = store.insert_segments(&[(1, 300, 6, &json)]).unwrap();
    assert!(stored_lengths(&store, "event_segments", new[0]).1.is_some());
    assert_eq!(store.segment_body(new[0]).unwrap().unwrap(), json);
    drop(store);
    EventStore::open(&path).unwrap();
}

/// Bodies spanning many pages come back whole through the blob read; a new file has
/// pointer-map pages (incremental auto-vacuum) and reuses the pages deletes free.
#[test]
fn large_bodies_round_trip_and_freed_pages_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let mut store = EventStore::open(&path).unwrap();
    let mode: i64 = store
        .conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "incremental");
    let ctx = store.context_id("http://x/v1/events", b"{}").unwrap();
    // Stored as it is: 700 KB over eleven 64 KB pages.
    let body = incompressible(700_000);
    let ids = store.insert_segments(&[(ctx, 1, 1, &body)]).unwrap();
    assert_eq!(stored_lengths(&store, "event_segments", ids[0]).1, None);
    assert_eq!(store.segment_body(ids[0]).unwrap().unwrap(), body);
    let pages = |store: &EventStore| -> i64 {
        store
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap()
    };
    let size = pages(&store);
    store.delete_segments(&ids).unwrap();
    for _ in 0..5 {
        let ids = store.insert_segments(&[(ctx, 1, 1, &body)]).unwrap();
        assert_eq!(store.segment_body(ids[0]).unwrap().unwrap(), body);
        store.delete_segments(&ids).unwrap();
    }
    let grown = pages(&store);
    assert!(grown <= size + 2, "{size} -> {grown} pages");
}

#[test]
fn a_second_opener_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let first = EventStore::open(&path).unwrap();
    match EventStore::open(&path) {
        Err(EventStoreError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    EventStore::open(&path).unwrap();
}
