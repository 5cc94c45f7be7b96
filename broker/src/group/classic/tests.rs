//! Unit tests of `group::classic`.

use super::*;

const DELAY: Duration = Duration::from_millis(100);

fn req(id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: id.into(),
        client_id: "c".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("{id}:{p}"))))
            .collect(),
        require_known_member_id: true,
        ..JoinRequest::default()
    }
}

struct Harness {
    g: Classic,
    now: Instant,
    next: u32,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            g: Classic::default(),
            now: Instant::now(),
            next: 0,
        }
    }

    fn join(&mut self, r: JoinRequest) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let mut out = Vec::new();
        self.next += 1;
        let n = self.next;
        self.g.join(r, tx, self.now, DELAY, || n.to_string(), &mut out);
        out.into_iter().for_each(|d| d.send(None));
        rx
    }

    fn sync(&mut self, r: SyncRequest) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let mut out = Vec::new();
        self.g.sync(r, tx, self.now, &mut out);
        out.into_iter().for_each(|d| d.send(None));
        rx
    }

    fn advance(&mut self, d: Duration) -> Vec<String> {
        self.now += d;
        let mut out = Vec::new();
        let removed = self.g.tick(self.now, &mut out);
        out.into_iter().for_each(|d| d.send(None));
        removed
    }

    /// Joins a new dynamic member through MEMBER_ID_REQUIRED; returns its id and
    /// the pending join.
    fn enter(&mut self, protocols: &[&str]) -> (String, oneshot::Receiver<JoinResult>) {
        let first = self.join(req("", protocols)).try_recv().unwrap().unwrap();
        assert!(first.member_id_required);
        let id = first.member_id.clone();
        (id.clone(), self.join(req(&id, protocols)))
    }
}

fn ready<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("answered")
}

fn pending<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) {
    assert!(
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
        "not answered yet"
    );
}

fn sync_req(id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: id.into(),
        generation,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
        ..SyncRequest::default()
    }
}

#[test]
fn members_starting_together_share_one_rebalance() {
    let mut h = Harness::new();
    let (a, mut ja) = h.enter(&["range", "roundrobin"]);
    h.advance(DELAY / 2);
    let (b, mut jb) = h.enter(&["roundrobin", "range"]);
    let (c, mut jc) = h.enter(&["roundrobin"]);
    h.advance(DELAY / 2);
    pending(&mut ja);
    h.advance(DELAY);
    let (oa, ob, oc) = (
        ready(&mut ja).unwrap(),
        ready(&mut jb).unwrap(),
        ready(&mut jc).unwrap(),
    );
    assert_eq!(oa.generation, 1);
    assert_eq!(oa.protocol, "roundrobin", "only roundrobin is common");
    assert_eq!(oa.leader, oa.member_id, "the first member leads");
    assert_eq!(oa.members.len(), 3);
    assert_eq!(oa.members[0].metadata, Bytes::from(format!("{a}:roundrobin")));
    assert!(ob.members.is_empty() && oc.members.is_empty());
    // Followers wait for the leader's assignment.
    let mut sb = h.sync(sync_req(&b, 1, &[]));
    pending(&mut sb);
    let mut sa = h.sync(sync_req(&a, 1, &[(&a, "A"), (&b, "B"), (&c, "C")]));
    assert_eq!(ready(&mut sa).unwrap().assignment, "A");
    assert_eq!(ready(&mut sb).unwrap().assignment, "B");
    let mut sc = h.sync(sync_req(&c, 1, &[]));
    assert_eq!(ready(&mut sc).unwrap().assignment, "C");
    assert_eq!(h.g.state, ClassicState::Stable);
}

#[test]
fn a_new_member_makes_everyone_rejoin_and_fences_the_old_generation() {
    let mut h = Harness::new();
    let (a, mut ja) = h.enter(&["range"]);
    h.advance(DELAY);
    assert_eq!(ready(&mut ja).unwrap().generation, 1);
    h.sync(sync_req(&a, 1, &[(&a, "all")]));
    h.g.check_commit(&a, 1, None).unwrap();
    let (b, mut jb) = h.enter(&["range"]);
    pending(&mut jb);
    assert_eq!(
        h.g.heartbeat(&a, None, 1, h.now).unwrap_err().kind,
        GroupErrorKind::RebalanceInProgress
    );
    // a commits what it consumed before rejoining (allowed while preparing).
    h.g.check_commit(&a, 1, None).unwrap();
    let mut ja = h.join(req(&a, &["range"]));
    let (oa, ob) = (ready(&mut ja).unwrap(), ready(&mut jb).unwrap());
    assert_eq!((oa.generation, ob.generation), (2, 2));
    assert_eq!(
        h.g.heartbeat(&a, None, 1, h.now).unwrap_err().kind,
        GroupErrorKind::IllegalGeneration
    );
    assert_eq!(
        h.g.check_commit(&b, 2, None).unwrap_err().kind,
        GroupErrorKind::RebalanceInProgress
    );
    h.sync(sync_req(&a, 2, &[(&a, "half"), (&b, "half")]));
    h.g.check_commit(&b, 2, None).unwrap();
    assert_eq!(
        h.g.check_commit(&b, 1, None).unwrap_err().kind,
        GroupErrorKind::IllegalGeneration
    );
    assert_eq!(
        h.g.check_commit("ghost", 2, None).unwrap_err().kind,
        GroupErrorKind::UnknownMemberId
    );
}

#[test]
fn members_that_do_not_rejoin_or_heartbeat_are_removed() {
    let mut h = Harness::new();
    let (a, mut ja) = h.enter(&["range"]);
    let (b, mut jb) = h.enter(&["range"]);
    h.advance(DELAY);
    let leader = ready(&mut ja).unwrap().leader;
    ready(&mut jb).unwrap();
    h.sync(sync_req(&leader, 1, &[]));
    h.sync(sync_req(if leader == a { &b } else { &a }, 1, &[]));
    // b leaves; a is told to rejoin and, alone, completes at once.
    h.g.leave(&b, None, h.now, &mut Vec::new()).unwrap();
    let mut ja = h.join(req(&a, &["range"]));
    let oa = ready(&mut ja).unwrap();
    assert_eq!((oa.generation, oa.leader.as_str()), (2, a.as_str()));
    h.sync(sync_req(&a, 2, &[]));
    // c arrives; a never rejoins: after the rebalance timeout c goes on alone.
    let (c, mut jc) = h.enter(&["range"]);
    pending(&mut jc);
    assert_eq!(h.advance(Duration::from_millis(5_001)), vec![a.clone()]);
    let oc = ready(&mut jc).unwrap();
    assert_eq!((oc.generation, oc.leader.as_str()), (3, c.as_str()));
    h.sync(sync_req(&c, 3, &[]));
    // c stops heartbeating: removed after its session; the group is empty.
    h.advance(Duration::from_millis(9_000));
    h.g.heartbeat(&c, None, 3, h.now).unwrap();
    assert!(h.advance(Duration::from_millis(9_999)).is_empty());
    assert_eq!(h.advance(Duration::from_millis(2)), vec![c]);
    assert_eq!(h.g.state, ClassicState::Empty);
    assert_eq!(h.g.generation, 4);
}

#[test]
fn a_leader_that_never_syncs_is_removed() {
    let mut h = Harness::new();
    let (a, mut ja) = h.enter(&["range"]);
    let (b, mut jb) = h.enter(&["range"]);
    h.advance(DELAY);
    let leader = ready(&mut ja).unwrap().leader;
    ready(&mut jb).unwrap();
    let follower = if leader == a { b } else { a };
    let mut sf = h.sync(sync_req(&follower, 1, &[]));
    assert_eq!(h.advance(Duration::from_millis(5_000)), vec![leader]);
    assert_eq!(ready(&mut sf).unwrap_err().kind, GroupErrorKind::RebalanceInProgress);
    let mut jf = h.join(req(&follower, &["range"]));
    assert_eq!(ready(&mut jf).unwrap().leader, follower);
}

#[test]
fn static_members_and_leaders_return_without_a_rebalance() {
    let mut h = Harness::new();
    let static_req = |inst: &str| {
        let mut r = req("", &["range"]);
        r.instance_id = Some(inst.into());
        r
    };
    let mut j1 = h.join(static_req("i1"));
    let mut j2 = h.join(static_req("i2"));
    h.advance(DELAY);
    let (o1, o2) = (ready(&mut j1).unwrap(), ready(&mut j2).unwrap());
    let (leader, follower) = if o1.leader == o1.member_id { (o1, o2) } else { (o2, o1) };
    let mut s = SyncRequest {
        instance_id: Some(if leader.member_id.starts_with("i1") { "i1" } else { "i2" }.into()),
        ..sync_req(
            &leader.member_id,
            1,
            &[(&leader.member_id, "L"), (&follower.member_id, "F")],
        )
    };
    h.sync(s.clone());
    let inst = if follower.member_id.starts_with("i1") {
        "i1"
    } else {
        "i2"
    };
    // The follower restarts (no LeaveGroup) and comes back under a new member id.
    let mut back = h.join(static_req(inst));
    let b = ready(&mut back).unwrap();
    assert_ne!(b.member_id, follower.member_id);
    assert_eq!(b.generation, 1, "no rebalance");
    assert_eq!(h.g.state, ClassicState::Stable);
    s.member_id = b.member_id.clone();
    s.instance_id = Some(inst.into());
    s.assignments.clear();
    assert_eq!(ready(&mut h.sync(s)).unwrap().assignment, "F");
    // The old incarnation is fenced.
    assert_eq!(
        h.g.heartbeat(&follower.member_id, Some(inst), 1, h.now)
            .unwrap_err()
            .kind,
        GroupErrorKind::FencedInstanceId
    );
    // Its commits too (a zombie must not move the group's offsets); the new one commits.
    assert_eq!(
        h.g.check_commit(&follower.member_id, 1, Some(inst)).unwrap_err().kind,
        GroupErrorKind::FencedInstanceId
    );
    h.g.check_commit(&b.member_id, 1, Some(inst)).unwrap();

    // The leader restarts too. Before v9 it is told the old leader's id (so it syncs
    // as a follower and gets its assignment back); nobody rebalances.
    let leader_inst = if inst == "i1" { "i2" } else { "i1" };
    let mut back = h.join(static_req(leader_inst));
    let l = ready(&mut back).unwrap();
    assert_eq!((l.generation, h.g.state), (1, ClassicState::Stable), "no rebalance");
    assert_eq!(l.leader, leader.member_id, "the old leader id: not asked to assign");
    assert!(l.members.is_empty() && !l.skip_assignment);
    let mut ls = sync_req(&l.member_id, 1, &[]);
    ls.instance_id = Some(leader_inst.into());
    assert_eq!(ready(&mut h.sync(ls)).unwrap().assignment, "L");
    // v9+ (KIP-814): it is the leader, sees the members, and must not assign.
    let mut again = static_req(leader_inst);
    again.supports_skip_assignment = true;
    let l2 = ready(&mut h.join(again)).unwrap();
    assert_eq!((l2.generation, h.g.state), (1, ClassicState::Stable), "no rebalance");
    assert_eq!((l2.leader.as_str(), l2.skip_assignment), (l2.member_id.as_str(), true));
    assert_eq!(l2.members.len(), 2);
    let mut ls = sync_req(&l2.member_id, 1, &[]);
    ls.instance_id = Some(leader_inst.into());
    assert_eq!(ready(&mut h.sync(ls)).unwrap().assignment, "L");
    assert_eq!(
        h.g.heartbeat(&l.member_id, Some(leader_inst), 1, h.now)
            .unwrap_err()
            .kind,
        GroupErrorKind::FencedInstanceId
    );
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut h = Harness::new();
    let (_a, _ja) = h.enter(&["range"]);
    let mut r = h.join(req("", &["cooperative-sticky"]));
    assert_eq!(
        ready(&mut r).unwrap_err().kind,
        GroupErrorKind::InconsistentGroupProtocol
    );
    let mut other = req("", &["range"]);
    other.protocol_type = "connect".into();
    let mut r = h.join(other);
    assert_eq!(
        ready(&mut r).unwrap_err().kind,
        GroupErrorKind::InconsistentGroupProtocol
    );
}

#[test]
fn a_member_that_lost_its_join_answer_gets_the_generation_again() {
    let mut h = Harness::new();
    let (a, mut ja) = h.enter(&["range"]);
    h.advance(DELAY);
    let first = ready(&mut ja).unwrap();
    let mut again = h.join(req(&a, &["range"]));
    assert_eq!(ready(&mut again).unwrap(), first);
    assert_eq!(h.g.generation, 1);
}
