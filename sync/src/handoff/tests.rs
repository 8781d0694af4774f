//! Tests of the hand-off: order, refusals, memory, the thread's array of lanes, the collector's wake.

use super::*;

/// Records that carry a "tag" only when it changed, like a config or user marker.
struct Tagged;

impl Handed for Tagged {
    type Record = (Option<u32>, u32);
    type Sent = Option<u32>;
    type Received = Option<u32>;
    type Item = (u32, u32);
    fn resolve(received: &mut Option<u32>, (tag, value): (Option<u32>, u32)) -> Option<(u32, u32)> {
        if let Some(tag) = tag {
            *received = Some(tag);
        }
        received.map(|tag| (tag, value))
    }
    thread_slots!(Tagged);
}

fn push_tagged(handoff: &Handoff<Tagged>, tag: u32, value: u32) -> Pushed {
    handoff.push(|sent| {
        let marker = (*sent != Some(tag)).then_some(tag);
        *sent = Some(tag);
        (marker, value)
    })
}

#[tokio::test]
async fn every_thread_s_records_arrive_in_order() {
    let handoff = Arc::new(Handoff::<Plain<(u32, u32)>>::new(4096));
    let mut rx = handoff.spawn_collector();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let handoff = Arc::clone(&handoff);
            std::thread::spawn(move || {
                for i in 0..3000 {
                    while handoff.push(|_| (t, i)) != Pushed::Accepted {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    while got.len() < 12_000 {
        tokio::select! {
            batch = rx.recv() => got.extend(batch.unwrap_or_default()),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                if threads.iter().all(|t| t.is_finished()) {
                    got.extend(handoff.take_all(&mut rx));
                }
            }
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(got.len(), 12_000);
    for t in 0..4 {
        let mine: Vec<u32> = got.iter().filter(|r| r.0 == t).map(|r| r.1).collect();
        assert_eq!(mine, (0..3000).collect::<Vec<_>>(), "thread {t}");
    }
    assert_eq!(handoff.accepted(), 12_000);
}

#[tokio::test(start_paused = true)]
async fn a_thread_wakes_the_collector_only_past_half_its_ring() {
    let handoff = Arc::new(Handoff::<Plain<u32>>::new(64));
    let mut rx = handoff.spawn_collector();
    let soon = Duration::from_millis(5);
    assert!(soon < COLLECT_INTERVAL);
    // A quarter ring is looked at, not handed over before the interval.
    for i in 0..16 {
        handoff.push(|_| i);
    }
    assert!(tokio::time::timeout(soon, rx.recv()).await.is_err());
    // Past half the ring (at the look after 48 pushes) the collector is woken at once.
    for i in 16..48 {
        handoff.push(|_| i);
    }
    let batch = tokio::time::timeout(soon, rx.recv()).await;
    assert_eq!(batch.ok().flatten(), Some((0..48).collect::<Vec<_>>()));
    // The interval hands over the rest.
    handoff.push(|_| 48);
    let batch = tokio::time::timeout(COLLECT_INTERVAL * 2, rx.recv()).await;
    assert_eq!(batch.ok().flatten(), Some(vec![48]));
}

#[tokio::test]
async fn a_full_ring_refuses_and_the_next_record_carries_everything() {
    let handoff = Handoff::<Tagged>::new(2);
    let (_tx, mut rx) = mpsc::channel(1);
    assert_eq!(push_tagged(&handoff, 7, 1), Pushed::Accepted);
    assert_eq!(push_tagged(&handoff, 7, 2), Pushed::Accepted);
    assert_eq!(push_tagged(&handoff, 7, 3), Pushed::Full);
    assert_eq!(handoff.refused(), 1);
    // The owner takes both, then the owner's memory is replaced by a later tag...
    assert_eq!(handoff.take_all(&mut rx), vec![(7, 1), (7, 2)]);
    assert_eq!(push_tagged(&handoff, 7, 4), Pushed::Accepted);
    assert_eq!(handoff.take_all(&mut rx), vec![(7, 4)]);
    assert_eq!(push_tagged(&handoff, 8, 5), Pushed::Accepted);
    assert_eq!(push_tagged(&handoff, 8, 6), Pushed::Accepted);
    assert_eq!(handoff.take_all(&mut rx), vec![(8, 5), (8, 6)]);
    assert_eq!(handoff.accepted(), 5);
}

/// Which entry of the thread's array holds `handoff`'s lane.
fn entry_of(handoff: &Handoff<Tagged>) -> Option<usize> {
    Tagged::thread_slots().unwrap().with(|slots| {
        slots
            .0
            .borrow()
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.handoff == handoff.id))
    })
}

#[test]
fn hand_offs_on_a_thread_take_entries_and_leave_them_when_dropped() {
    std::thread::spawn(|| {
        let (_tx, mut rx) = mpsc::channel(1);
        let first = Handoff::<Tagged>::new(8);
        let second = Handoff::<Tagged>::new(8);
        assert_eq!(push_tagged(&first, 1, 10), Pushed::Accepted);
        assert_eq!(push_tagged(&second, 2, 20), Pushed::Accepted);
        assert_eq!(push_tagged(&first, 1, 11), Pushed::Accepted);
        assert_eq!(push_tagged(&second, 2, 21), Pushed::Accepted);
        assert_eq!(first.take_all(&mut rx), vec![(1, 10), (1, 11)]);
        assert_eq!(second.take_all(&mut rx), vec![(2, 20), (2, 21)]);
        assert_eq!((entry_of(&first), entry_of(&second)), (Some(0), Some(1)));
        // Once the first is gone, its entry goes to the next hand-off that pushes.
        drop(first);
        let third = Handoff::<Tagged>::new(8);
        assert_eq!(push_tagged(&third, 3, 30), Pushed::Accepted);
        assert_eq!(entry_of(&third), Some(0));
        assert_eq!(third.take_all(&mut rx), vec![(3, 30)]);
        // The second keeps its lane (and its memory: no tag resent).
        assert_eq!(push_tagged(&second, 2, 22), Pushed::Accepted);
        assert_eq!(second.take_all(&mut rx), vec![(2, 22)]);
    })
    .join()
    .unwrap();
}

#[test]
fn hand_offs_past_the_array_use_their_thread_local() {
    std::thread::spawn(|| {
        let (_tx, mut rx) = mpsc::channel(1);
        let handoffs: Vec<_> = (0..THREAD_SLOTS + 2)
            .map(|_| Handoff::<Tagged>::new(8))
            .collect();
        for round in 0..2 {
            for (i, h) in handoffs.iter().enumerate() {
                assert_eq!(push_tagged(h, i as u32, round), Pushed::Accepted);
            }
        }
        for (i, h) in handoffs.iter().enumerate() {
            assert_eq!(entry_of(h), (i < THREAD_SLOTS).then_some(i), "hand-off {i}");
            // Each lane kept its memory: the tag went once, both records arrived in order.
            assert_eq!(h.take_all(&mut rx), vec![(i as u32, 0), (i as u32, 1)]);
        }
    })
    .join()
    .unwrap();
}

#[test]
fn a_push_from_inside_a_push_goes_to_the_other_lane() {
    std::thread::spawn(|| {
        let (_tx, mut rx) = mpsc::channel(1);
        let handoff = Handoff::<Tagged>::new(8);
        let outer = handoff.push(|_| {
            assert_eq!(push_tagged(&handoff, 5, 1), Pushed::Accepted);
            (Some(4), 2)
        });
        assert_eq!(outer, Pushed::Accepted);
        let mut got = handoff.take_all(&mut rx);
        got.sort();
        assert_eq!(got, vec![(4, 2), (5, 1)]);
        assert_eq!((handoff.accepted(), handoff.refused()), (2, 0));
    })
    .join()
    .unwrap();
}

#[test]
fn the_ring_of_an_ended_thread_is_retired_once_drained_and_still_counted() {
    let handoff = Arc::new(Handoff::<Tagged>::new(8));
    let (_tx, mut rx) = mpsc::channel(1);
    for thread in 0..3 {
        let h = Arc::clone(&handoff);
        std::thread::spawn(move || {
            assert_eq!(push_tagged(&h, thread, 1), Pushed::Accepted);
            assert_eq!(push_tagged(&h, thread, 2), Pushed::Accepted);
        })
        .join()
        .unwrap();
    }
    assert_eq!(handoff.rings().len(), 3);
    let mut got = handoff.take_all(&mut rx);
    got.sort();
    assert_eq!(got, vec![(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]);
    assert_eq!(handoff.rings().len(), 0);
    assert_eq!(handoff.accepted(), 6);
}

#[test]
fn closed_refuses_without_building() {
    let handoff = Handoff::<Plain<u32>>::new(8);
    handoff.close();
    assert!(handoff.is_closed());
    assert_eq!(handoff.push(|_| unreachable!()), Pushed::Closed);
}

#[tokio::test]
async fn take_all_keeps_channel_batches_before_ring_records() {
    let handoff = Arc::new(Handoff::<Plain<u32>>::new(64));
    let (tx, mut rx) = mpsc::channel(8);
    for i in 0..10 {
        handoff.push(|_| i);
    }
    handoff.collect_once(&tx);
    for i in 10..20 {
        handoff.push(|_| i);
    }
    assert_eq!(handoff.take_all(&mut rx), (0..20).collect::<Vec<_>>());
}
