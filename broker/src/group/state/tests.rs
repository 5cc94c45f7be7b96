//! Unit tests of `group::state`.

use super::*;

/// The shell with the classic protocol's members, as the coordinator keeps it.
type Group = super::Group<crate::group::classic::Classic>;

fn catalog() -> BTreeMap<String, u32> {
    BTreeMap::from([("t".to_string(), 4)])
}

fn hb(id: &str, epoch: i32, owned: &BTreeSet<Tp>) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        session_timeout_ms: 10_000,
        topics: BTreeSet::from(["t".to_string()]),
        owned: owned.clone(),
        ..Heartbeat::default()
    }
}

#[test]
fn offsets_expire_once_the_group_is_empty_for_the_retention() {
    let committed = |ts| Committed {
        offset: 1,
        metadata: String::new(),
        commit_timestamp_ms: ts,
    };
    let mut g = Group::new("g");
    g.heartbeat(
        hb("a", 0, &BTreeSet::new()),
        Instant::now(),
        &catalog(),
        || unreachable!(),
    )
    .unwrap();
    g.offsets.insert(("t".into(), 0), committed(1_000));
    g.offsets.insert(("t".into(), 1), committed(5_000));
    // A topic the member does not subscribe to: expired by its commit time, on the
    // passes that are given the catalog.
    g.offsets.insert(("gone".into(), 0), committed(1_000));
    let catalog = catalog();
    assert!(
        g.expire_offsets(1_000_000, 1_000, None).is_empty(),
        "a member keeps them"
    );
    assert_eq!(g.expire_offsets(1_999, 1_000, Some(&catalog)), []);
    assert_eq!(
        g.expire_offsets(2_000, 1_000, Some(&catalog)),
        [("gone".to_string(), 0)]
    );
    assert_eq!(
        g.expire_offsets(1_000_000, 1_000, Some(&catalog)),
        [],
        "t is subscribed"
    );
    assert_eq!(g.empty_since_ms, None);
    g.remove_member("a", &catalog);
    // Empty from 2 000; a retention of 0 keeps offsets for ever.
    assert!(g.expire_offsets(2_000, 0, None).is_empty());
    assert_eq!(g.empty_since_ms, Some(2_000));
    assert!(g.expire_offsets(2_999, 1_000, None).is_empty());
    // Committed before the group emptied: counted from 2 000. Committed after (at
    // 5 000, by an admin): counted from the commit.
    assert_eq!(g.expire_offsets(3_000, 1_000, None), [("t".to_string(), 0)]);
    assert!(g.expire_offsets(5_999, 1_000, None).is_empty());
    assert_eq!(g.expire_offsets(6_000, 1_000, None), [("t".to_string(), 1)]);
    assert!(g.is_dead());
}

#[test]
fn a_partition_moves_only_after_its_owner_releases_it() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let a = g
        .heartbeat(hb("a", 0, &BTreeSet::new()), now, &catalog(), || unreachable!())
        .unwrap();
    assert_eq!(a.assignment.len(), 4);
    let b = g
        .heartbeat(hb("b", 0, &BTreeSet::new()), now, &catalog(), || unreachable!())
        .unwrap();
    assert!(b.assignment.is_empty(), "b waits: a still owns everything");
    assert!(b.reconciling);
    // a is told to keep two; until it confirms, b gets nothing.
    let a2 = g
        .heartbeat(
            hb("a", a.member_epoch, &a.assignment),
            now,
            &catalog(),
            || unreachable!(),
        )
        .unwrap();
    assert_eq!(a2.assignment.len(), 2);
    assert_eq!(a2.member_epoch, a.member_epoch, "epoch waits for the release");
    let revoked: Vec<Tp> = a.assignment.difference(&a2.assignment).cloned().collect();
    // a can still commit the partitions it is giving up...
    g.check_commit("a", a2.member_epoch, None, &revoked[0]).unwrap();
    let b2 = g
        .heartbeat(
            hb("b", b.member_epoch, &BTreeSet::new()),
            now,
            &catalog(),
            || unreachable!(),
        )
        .unwrap();
    assert!(b2.assignment.is_empty());
    // ...until it confirms; then they go to b, and a's commits for them are fenced.
    let a3 = g
        .heartbeat(
            hb("a", a2.member_epoch, &a2.assignment),
            now,
            &catalog(),
            || unreachable!(),
        )
        .unwrap();
    assert!(a3.member_epoch > a2.member_epoch);
    assert_eq!(
        g.check_commit("a", a3.member_epoch, None, &revoked[0])
            .unwrap_err()
            .kind,
        GroupErrorKind::StaleMemberEpoch
    );
    let b3 = g
        .heartbeat(
            hb("b", b2.member_epoch, &BTreeSet::new()),
            now,
            &catalog(),
            || unreachable!(),
        )
        .unwrap();
    assert_eq!(b3.assignment, revoked.into_iter().collect());
    assert_eq!(g.state(), "stable");
}

#[test]
fn a_member_that_never_releases_is_removed_after_its_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let mut stuck = hb("a", 0, &BTreeSet::new());
    stuck.rebalance_timeout_ms = 1_000;
    let a = g.heartbeat(stuck.clone(), now, &catalog(), || unreachable!()).unwrap();
    g.heartbeat(hb("b", 0, &BTreeSet::new()), now, &catalog(), || unreachable!())
        .unwrap();
    // a keeps heartbeating but keeps reporting everything it had.
    stuck.member_epoch = a.member_epoch;
    stuck.owned = a.assignment.clone();
    for ms in [0, 500, 900] {
        let t = now + std::time::Duration::from_millis(ms);
        g.heartbeat(stuck.clone(), t, &catalog(), || unreachable!()).unwrap();
        assert!(g.expire(t, &catalog()).is_empty());
    }
    let late = now + std::time::Duration::from_millis(1_001);
    assert_eq!(g.expire(late, &catalog()), vec!["a".to_string()]);
    let b = g
        .heartbeat(
            hb("b", g.members["b"].epoch, &BTreeSet::new()),
            late,
            &catalog(),
            || unreachable!(),
        )
        .unwrap();
    assert_eq!(b.assignment.len(), 4);
}

#[test]
fn static_member_returns_without_reassignment() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let mut join = hb("", 0, &BTreeSet::new());
    join.instance_id = Some("i1".into());
    let a = g.heartbeat(join.clone(), now, &catalog(), || "a".into()).unwrap();
    let epoch = g.epoch;
    let mut leave = hb("a", STATIC_LEAVE_EPOCH, &a.assignment);
    leave.instance_id = Some("i1".into());
    g.heartbeat(leave, now, &catalog(), || unreachable!()).unwrap();
    assert!(g.members["a"].left);
    let back = g.heartbeat(join, now, &catalog(), || "a2".into()).unwrap();
    assert_eq!(back.assignment, a.assignment);
    assert_eq!(g.epoch, epoch, "no new group epoch");
    assert!(!g.members.contains_key("a"));
}
