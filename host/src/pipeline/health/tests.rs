use super::*;
use crate::kafka::group::{Member, PartitionView};

const SETTINGS: HealthSettings = HealthSettings {
    rejoin_after: Duration::from_secs(30),
    stalled_after: Duration::from_secs(60),
};

fn view(partition: i32, end: i64, committed: Option<i64>) -> PartitionView {
    PartitionView {
        topic: "orders".into(),
        partition,
        start: 0,
        end,
        committed,
    }
}

fn member(id: &str, partitions: &[i32]) -> Member {
    Member {
        id: id.into(),
        client_id: "partita-pass".into(),
        host: "/127.0.0.1".into(),
        assigned: partitions.iter().map(|p| ("orders".into(), *p)).collect(),
    }
}

fn snapshot(partitions: Vec<PartitionView>, state: &str, members: Vec<Member>) -> GroupSnapshot {
    GroupSnapshot {
        partitions,
        group: Some(GroupView {
            state: state.into(),
            members,
        }),
    }
}

fn owned(partitions: &[i32]) -> BTreeSet<i32> {
    partitions.iter().copied().collect()
}

fn no_position(_: &str, _: i32) -> Option<i64> {
    None
}

/// A group whose only member (this host) was handed nothing, with lag on
/// partitions 0 and 1: the situation of a restart after `kill -9` on a
/// coordinator that kept the dead member's generation.
fn orphaned() -> GroupSnapshot {
    snapshot(
        vec![
            view(0, 100, None),
            view(1, 80, Some(50)),
            view(2, 10, Some(10)),
        ],
        "Stable",
        vec![member("me", &[])],
    )
}

#[test]
fn partitions_with_lag_that_nobody_owns_warn_then_rejoin_after_the_bound() {
    let mut h = Health::new("pass", "g.pass", SETTINGS);
    let t0 = Instant::now();
    let first = h.observe(t0, &orphaned(), &owned(&[]), no_position);
    assert_eq!(
        first.unowned,
        [
            ("orders".to_string(), 0, 100),
            ("orders".to_string(), 1, 30)
        ],
        "partition 2 has no lag, so it is not stuck"
    );
    assert!(first.warnings.is_empty(), "one sighting may be a race");
    assert!(!first.rejoin);

    let second = h.observe(
        t0 + Duration::from_secs(5),
        &orphaned(),
        &owned(&[]),
        no_position,
    );
    assert!(!second.rejoin);
    assert_eq!(second.warnings.len(), 1);
    let w = &second.warnings[0];
    for part in [
        "stage \"pass\"",
        "group g.pass",
        "orders partitions [0, 1]",
        "lag 130",
        "this host owns nothing",
        "me (partita-pass at /127.0.0.1) owns nothing",
        "rejoining in 25s",
    ] {
        assert!(w.contains(part), "{part:?} missing from {w}");
    }

    let due = h.observe(
        t0 + Duration::from_secs(30),
        &orphaned(),
        &owned(&[]),
        no_position,
    );
    assert!(due.rejoin, "{due:?}");
    assert!(due.warnings[0].ends_with("leaving and rejoining the group"));

    // Still unowned after the rejoin: warnings go on, the next rejoin
    // waits twice as long.
    let after = h.observe(
        t0 + Duration::from_secs(35),
        &orphaned(),
        &owned(&[]),
        no_position,
    );
    assert!(!after.rejoin);
    assert_eq!(after.warnings.len(), 1);
    let not_yet = h.observe(
        t0 + Duration::from_secs(59),
        &orphaned(),
        &owned(&[]),
        no_position,
    );
    assert!(!not_yet.rejoin);
    let again = h.observe(
        t0 + Duration::from_secs(60),
        &orphaned(),
        &owned(&[]),
        no_position,
    );
    assert!(again.rejoin);
    let later = h.observe(
        t0 + Duration::from_secs(119),
        &orphaned(),
        &owned(&[]),
        no_position,
    );
    assert!(!later.rejoin, "the wait doubled to 60 s");
    assert!(
        h.observe(
            t0 + Duration::from_secs(120),
            &orphaned(),
            &owned(&[]),
            no_position
        )
        .rejoin
    );

    // Owned again: the episode ends and says so.
    let healthy = snapshot(
        orphaned().partitions,
        "Stable",
        vec![member("me-2", &[0, 1, 2])],
    );
    let fine = h.observe(
        t0 + Duration::from_secs(125),
        &healthy,
        &owned(&[0, 1, 2]),
        no_position,
    );
    assert!(fine.unowned.is_empty() && fine.warnings.is_empty() && !fine.rejoin);
    assert_eq!(fine.recovered.len(), 1, "{fine:?}");
}

#[test]
fn partitions_owned_here_or_by_another_member_are_not_stuck() {
    let mut h = Health::new("pass", "g.pass", SETTINGS);
    let t0 = Instant::now();
    let split = snapshot(
        vec![view(0, 100, None), view(1, 80, Some(50))],
        "Stable",
        vec![member("me", &[0]), member("other", &[1])],
    );
    for s in 0..20 {
        let v = h.observe(
            t0 + Duration::from_secs(s * 5),
            &split,
            &owned(&[0]),
            no_position,
        );
        assert!(
            v.unowned.is_empty() && !v.rejoin && v.warnings.is_empty(),
            "{v:?}"
        );
    }
    // This host's workers count as owning even before the describe says
    // so (and the other way round).
    let mine = snapshot(split.partitions.clone(), "Stable", vec![member("me", &[])]);
    let v = h.observe(t0, &mine, &owned(&[0, 1]), no_position);
    assert!(v.unowned.is_empty());
}

#[test]
fn a_group_that_is_rebalancing_is_not_judged() {
    let mut h = Health::new("pass", "g.pass", SETTINGS);
    let t0 = Instant::now();
    let rebalancing = snapshot(orphaned().partitions, "PreparingRebalance", vec![]);
    for s in 0..20 {
        let at = t0 + Duration::from_secs(s * 10);
        let v = h.observe(at, &rebalancing, &owned(&[]), no_position);
        assert!(v.unowned.is_empty() && !v.rejoin && v.warnings.is_empty());
    }
}

#[test]
fn without_a_describe_partitions_whose_commit_does_not_move_are_unowned() {
    let mut h = Health::new("pass", "g.pass", SETTINGS);
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);
    let undescribed = |committed: i64| GroupSnapshot {
        partitions: vec![view(0, 100, Some(committed)), view(1, 10, Some(10))],
        group: None,
    };
    // Someone commits partition 0 now and then: it is owned.
    for s in 0..12 {
        let v = h.observe(at(s * 5), &undescribed(s as i64), &owned(&[]), no_position);
        assert!(v.unowned.is_empty(), "{v:?}");
    }
    // Then nobody does: unowned once it has not moved for rejoin_after.
    assert!(
        h.observe(at(80), &undescribed(20), &owned(&[]), no_position)
            .unowned
            .is_empty()
    );
    assert!(
        h.observe(at(109), &undescribed(20), &owned(&[]), no_position)
            .unowned
            .is_empty()
    );
    let first = h.observe(at(110), &undescribed(20), &owned(&[]), no_position);
    assert_eq!(first.unowned, [("orders".to_string(), 0, 80)]);
    let second = h.observe(at(115), &undescribed(20), &owned(&[]), no_position);
    assert!(
        second.warnings[0].contains("members: unknown (the coordinator does not describe groups"),
        "{:?}",
        second.warnings
    );
    assert!(
        h.observe(at(140), &undescribed(20), &owned(&[]), no_position)
            .rejoin
    );
    // Held here: not unowned, whatever its commit does.
    let mine = h.observe(at(145), &undescribed(20), &owned(&[0]), no_position);
    assert!(mine.unowned.is_empty() && !mine.rejoin);
}

#[test]
fn an_owned_partition_with_lag_that_does_not_move_is_stalled_until_it_moves() {
    let mut h = Health::new("pass", "g.pass", SETTINGS);
    let t0 = Instant::now();
    let snap = snapshot(
        vec![view(0, 100, Some(40)), view(1, 100, Some(100))],
        "Stable",
        vec![member("me", &[0, 1])],
    );
    let mine = owned(&[0, 1]);
    let at = |s| t0 + Duration::from_secs(s);
    let position = |next: i64| move |_: &str, p: i32| (p == 0).then_some(next);
    assert!(
        h.observe(at(0), &snap, &mine, position(42))
            .stalled
            .is_empty()
    );
    assert!(
        h.observe(at(59), &snap, &mine, position(42))
            .stalled
            .is_empty()
    );
    let v = h.observe(at(60), &snap, &mine, position(42));
    assert_eq!(
        v.stalled,
        [Stalled {
            topic: "orders".into(),
            partition: 0,
            offset: 42,
            lag: 58,
            for_: Duration::from_secs(60)
        }]
    );
    let w = &v.warnings[0];
    assert!(
        w.contains("partition orders/0 has not advanced from offset 42 for 60s with lag 58"),
        "{w}"
    );
    assert!(w.contains("fetch.max.bytes"), "{w}");
    let quiet = h.observe(at(90), &snap, &mine, position(42));
    assert_eq!(quiet.stalled.len(), 1);
    assert!(quiet.warnings.is_empty(), "warned once per stalled_after");
    assert_eq!(
        h.observe(at(120), &snap, &mine, position(42))
            .warnings
            .len(),
        1
    );

    let moved = h.observe(at(125), &snap, &mine, position(43));
    assert!(moved.stalled.is_empty());
    assert_eq!(moved.recovered.len(), 1, "{moved:?}");

    // Without a position, the committed offset stands in.
    let mut fresh = Health::new("pass", "g.pass", SETTINGS);
    fresh.observe(at(0), &snap, &mine, no_position);
    assert_eq!(
        fresh.observe(at(60), &snap, &mine, no_position).stalled[0].offset,
        40
    );
    // A partition that is not owned here is never stalled here.
    let mut other = Health::new("pass", "g.pass", SETTINGS);
    other.observe(at(0), &snap, &owned(&[1]), no_position);
    assert!(
        other
            .observe(at(60), &snap, &owned(&[1]), no_position)
            .stalled
            .is_empty()
    );
}

#[test]
fn status_marks_owned_stalled_and_unowned() {
    let snap = orphaned();
    let verdict = Verdict {
        unowned: vec![("orders".into(), 0, 100)],
        stalled: vec![Stalled {
            topic: "orders".into(),
            partition: 2,
            offset: 10,
            lag: 0,
            for_: Duration::ZERO,
        }],
        ..Verdict::default()
    };
    let s = status(&snap, &owned(&[2]), &verdict);
    assert_eq!(s.unowned, 1);
    let flags: Vec<(i32, i64, bool, bool)> = s
        .rows
        .iter()
        .map(|r| (r.partition, r.lag, r.owned, r.stalled))
        .collect();
    assert_eq!(
        flags,
        [
            (0, 100, false, false),
            (1, 30, false, false),
            (2, 0, true, true)
        ]
    );
}
