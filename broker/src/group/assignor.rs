//! Server-side assignors: from the members' subscriptions and the topics' partition
//! counts to a target assignment. Pure functions, so property tests can drive them.
//!
//! - `range`: per topic, the subscribed members in a stable order (instance id, else
//!   member id) each take a contiguous range; the first `n % m` take one more. Members
//!   subscribed to the same topics get the same partition numbers of each (co-partitioned
//!   joins), at the price of balance across topics.
//! - `uniform`: balanced over all partitions and sticky. It keeps every partition where it
//!   was when its owner is still eligible, and moves only what balance requires. With equal
//!   subscriptions it moves the minimum number of partitions: the largest previous
//!   holders get the larger quotas, and only partitions above a member's quota move.
//!   With differing subscriptions it places the most constrained partitions first and then
//!   moves partitions from fuller to emptier eligible members while that narrows the gap.

use std::collections::{BTreeMap, BTreeSet};

/// A topic partition.
pub type Tp = (String, u32);

/// Member id → partitions.
pub type Assignment = BTreeMap<String, BTreeSet<Tp>>;

/// One member as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub id: String,
    /// Orders members in `range`: the instance id when static, so a restarted static
    /// member takes the same ranges; the member id otherwise.
    pub sort_key: String,
    /// The topics it reads (already resolved from names and regex).
    pub topics: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    Uniform,
}

impl Assignor {
    pub const DEFAULT: Assignor = Assignor::Uniform;

    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "uniform" => Some(Assignor::Uniform),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::Uniform => "uniform",
        }
    }

    /// The target assignment. Every member gets an entry (maybe empty); every partition
    /// of a topic someone subscribes to goes to exactly one subscriber.
    pub fn assign(self, members: &[MemberSpec], topics: &BTreeMap<String, u32>, previous: &Assignment) -> Assignment {
        match self {
            Assignor::Range => range(members, topics),
            Assignor::Uniform => uniform(members, topics, previous),
        }
    }
}

fn empty(members: &[MemberSpec]) -> Assignment {
    members.iter().map(|m| (m.id.clone(), BTreeSet::new())).collect()
}

fn range(members: &[MemberSpec], topics: &BTreeMap<String, u32>) -> Assignment {
    let mut out = empty(members);
    for (topic, &count) in topics {
        let mut subs: Vec<&MemberSpec> = members.iter().filter(|m| m.topics.contains(topic)).collect();
        if subs.is_empty() {
            continue;
        }
        subs.sort_by(|a, b| (&a.sort_key, &a.id).cmp(&(&b.sort_key, &b.id)));
        let m = subs.len() as u32;
        let (base, extra) = (count / m, count % m);
        let mut next = 0;
        for (i, member) in subs.iter().enumerate() {
            let take = base + u32::from((i as u32) < extra);
            let set = out.get_mut(&member.id).expect("every member has an entry");
            set.extend((next..next + take).map(|p| (topic.clone(), p)));
            next += take;
        }
    }
    out
}

// Long by choice: the uniform assignor's passes (keep, fill, balance) share their
// bookkeeping; split, each would need all of it.
fn uniform(members: &[MemberSpec], topics: &BTreeMap<String, u32>, previous: &Assignment) -> Assignment {
    let mut out = empty(members);
    if members.is_empty() {
        return out;
    }
    let spec: BTreeMap<&str, &MemberSpec> = members.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut all: Vec<Tp> = Vec::new();
    for (topic, &count) in topics {
        if members.iter().any(|m| m.topics.contains(topic)) {
            all.extend((0..count).map(|p| (topic.clone(), p)));
        }
    }
    // Keep what is still valid: the owner is here, subscribed, and the partition exists.
    let mut owner: BTreeMap<Tp, String> = BTreeMap::new();
    for (id, parts) in previous {
        let Some(m) = spec.get(id.as_str()) else { continue };
        for tp in parts {
            let exists = topics.get(&tp.0).is_some_and(|&n| tp.1 < n);
            if exists && m.topics.contains(&tp.0) && !owner.contains_key(tp) {
                owner.insert(tp.clone(), id.clone());
                out.get_mut(id).expect("entry").insert(tp.clone());
            }
        }
    }

    let homogeneous = members.windows(2).all(|w| w[0].topics == w[1].topics);
    if homogeneous {
        let k = members.len();
        let (base, extra) = (all.len() / k, all.len() % k);
        // The largest previous holders get the larger quotas: fewest partitions move.
        let mut order: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        order.sort_by(|a, b| out[*b].len().cmp(&out[*a].len()).then(a.cmp(b)));
        let quota: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, base + usize::from(i < extra)))
            .collect();
        for (id, q) in &quota {
            let set = out.get_mut(*id).expect("entry");
            while set.len() > *q {
                let tp = set.iter().next_back().cloned().expect("non-empty");
                set.remove(&tp);
                owner.remove(&tp);
            }
        }
        let mut free = all.into_iter().filter(|tp| !owner.contains_key(tp));
        for id in &order {
            let set = out.get_mut(*id).expect("entry");
            while set.len() < quota[id] {
                match free.next() {
                    Some(tp) => set.insert(tp),
                    None => break,
                };
            }
        }
        return out;
    }

    // Differing subscriptions: most constrained partitions first, to the emptiest
    // eligible member; then even out.
    let eligible = |topic: &str| -> Vec<&str> {
        members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.id.as_str())
            .collect()
    };
    let mut free: Vec<(usize, Tp)> = all
        .iter()
        .filter(|tp| !owner.contains_key(*tp))
        .map(|tp| (eligible(&tp.0).len(), tp.clone()))
        .collect();
    free.sort();
    for (_, tp) in free {
        let best = eligible(&tp.0)
            .into_iter()
            .min_by(|a, b| out[*a].len().cmp(&out[*b].len()).then(a.cmp(b)))
            .expect("partition of a subscribed topic");
        out.get_mut(best).expect("entry").insert(tp.clone());
        owner.insert(tp, best.to_owned());
    }
    // Each move lowers the sum of squared counts, so this ends.
    loop {
        let mut moved = false;
        for tp in &all {
            let from = owner[tp].clone();
            let from_len = out[&from].len();
            let to = eligible(&tp.0)
                .into_iter()
                .filter(|id| out[*id].len() + 1 < from_len)
                .min_by(|a, b| out[*a].len().cmp(&out[*b].len()).then(a.cmp(b)));
            if let Some(to) = to {
                let to = to.to_owned();
                out.get_mut(&from).expect("entry").remove(tp);
                out.get_mut(&to).expect("entry").insert(tp.clone());
                owner.insert(tp.clone(), to);
                moved = true;
            }
        }
        if !moved {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn member(id: &str, topics: &[&str]) -> MemberSpec {
        MemberSpec {
            id: id.into(),
            sort_key: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn owners(a: &Assignment) -> BTreeMap<Tp, String> {
        let mut o = BTreeMap::new();
        for (id, parts) in a {
            for tp in parts {
                assert!(o.insert(tp.clone(), id.clone()).is_none(), "{tp:?} assigned twice");
            }
        }
        o
    }

    /// Complete and exclusive: each partition of a subscribed topic to exactly one of its
    /// subscribers, nothing else.
    fn check_complete(members: &[MemberSpec], topics: &BTreeMap<String, u32>, a: &Assignment) {
        let o = owners(a);
        assert_eq!(a.len(), members.len());
        for (topic, &n) in topics {
            let subscribed = members.iter().any(|m| m.topics.contains(topic));
            for p in 0..n {
                match o.get(&(topic.clone(), p)) {
                    Some(id) => {
                        let m = members.iter().find(|m| &m.id == id).expect("a member");
                        assert!(m.topics.contains(topic), "{id} got {topic}-{p} without subscribing");
                    }
                    None => assert!(!subscribed, "{topic}-{p} unassigned"),
                }
            }
        }
        assert!(o.keys().all(|(t, p)| topics.get(t).is_some_and(|n| p < n)));
    }

    fn spread(counts: impl Iterator<Item = usize>) -> usize {
        let c: Vec<usize> = counts.collect();
        c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0)
    }

    /// The fewest partitions any balanced assignment must move: give the larger quotas to
    /// the largest valid previous holdings; whatever exceeds a quota moves.
    fn min_moves(members: &[MemberSpec], topics: &BTreeMap<String, u32>, prev: &Assignment) -> usize {
        let total: usize = topics.values().map(|&n| n as usize).sum();
        let k = members.len();
        let mut kept: Vec<usize> = members
            .iter()
            .map(|m| {
                prev.get(&m.id).map_or(0, |parts| {
                    parts
                        .iter()
                        .filter(|(t, p)| m.topics.contains(t) && topics.get(t).is_some_and(|n| p < n))
                        .count()
                })
            })
            .collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        kept.iter()
            .enumerate()
            .map(|(i, &c)| c.saturating_sub(total / k + usize::from(i < total % k)))
            .sum()
    }

    fn moves(prev: &Assignment, next: &Assignment) -> usize {
        let before = owners(prev);
        let after = owners(next);
        before
            .iter()
            .filter(|(tp, id)| next.contains_key(*id) && after.get(*tp).is_some_and(|now| now != *id))
            .count()
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let members = vec![member("a", &["t"]), member("b", &["t"])];
        let topics = BTreeMap::from([("t".to_string(), 5)]);
        let a = Assignor::Range.assign(&members, &topics, &Assignment::new());
        let parts = |id: &str| a[id].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!(parts("a"), vec![0, 1, 2]);
        assert_eq!(parts("b"), vec![3, 4]);
    }

    #[test]
    fn uniform_keeps_partitions_when_a_member_joins() {
        let topics = BTreeMap::from([("t".to_string(), 6)]);
        let one = vec![member("a", &["t"])];
        let a1 = Assignor::Uniform.assign(&one, &topics, &Assignment::new());
        assert_eq!(a1["a"].len(), 6);
        let two = vec![member("a", &["t"]), member("b", &["t"])];
        let a2 = Assignor::Uniform.assign(&two, &topics, &a1);
        assert_eq!((a2["a"].len(), a2["b"].len()), (3, 3));
        assert!(a2["a"].is_subset(&a1["a"]), "a keeps half of what it had");
    }

    fn arb_topics() -> impl Strategy<Value = BTreeMap<String, u32>> {
        proptest::collection::btree_map("[a-d]", 1u32..12, 1..4)
    }

    fn arb_members(topics: Vec<String>, homogeneous: bool) -> impl Strategy<Value = Vec<MemberSpec>> {
        let n = topics.len();
        let subsets = proptest::collection::vec(proptest::sample::subsequence(topics.clone(), 1..=n), 1..8);
        (subsets, 0..1000u32).prop_map(move |(subs, salt)| {
            subs.iter()
                .enumerate()
                .map(|(i, s)| {
                    let chosen: Vec<&str> = if homogeneous {
                        topics.iter().map(|t| t.as_str()).collect()
                    } else {
                        s.iter().map(|t| t.as_str()).collect()
                    };
                    member(&format!("m{}", salt as usize + i), &chosen)
                })
                .collect()
        })
    }

    /// Topics and members before a change, then after it.
    type Change = (
        BTreeMap<String, u32>,
        Vec<MemberSpec>,
        BTreeMap<String, u32>,
        Vec<MemberSpec>,
    );

    /// A group, then a change: members leave and join, topics grow.
    fn arb_change(homogeneous: bool) -> impl Strategy<Value = Change> {
        arb_topics().prop_flat_map(move |topics| {
            let names: Vec<String> = topics.keys().cloned().collect();
            (
                Just(topics.clone()),
                arb_members(names.clone(), homogeneous),
                Just(names.clone()),
                arb_members(names, homogeneous),
                proptest::collection::vec(0u32..4, topics.len()),
                any::<proptest::sample::Index>(),
            )
                .prop_map(move |(topics, first, _, joiners, growth, keep)| {
                    let mut grown = topics.clone();
                    for ((_, n), g) in grown.iter_mut().zip(growth) {
                        *n += g;
                    }
                    // Some of the first members stay; new ones join (ids made unique).
                    let stay = keep.index(first.len() + 1);
                    let mut second: Vec<MemberSpec> = first.iter().take(stay).cloned().collect();
                    for (i, mut j) in joiners.into_iter().enumerate() {
                        j.id = format!("j{i}");
                        j.sort_key = j.id.clone();
                        if homogeneous {
                            j.topics = first[0].topics.clone();
                        }
                        second.push(j);
                    }
                    (topics, first, grown, second)
                })
        })
    }

    proptest! {
        #[test]
        fn range_is_complete_and_balanced_per_topic((topics, first, grown, second) in arb_change(false)) {
            for (members, topics) in [(&first, &topics), (&second, &grown)] {
                let a = Assignor::Range.assign(members, topics, &Assignment::new());
                check_complete(members, topics, &a);
                for topic in topics.keys() {
                    let per = members
                        .iter()
                        .filter(|m| m.topics.contains(topic))
                        .map(|m| a[&m.id].iter().filter(|(t, _)| t == topic).count());
                    prop_assert!(spread(per) <= 1, "range unbalanced on {topic}");
                }
            }
        }

        #[test]
        fn uniform_is_complete_balanced_and_moves_the_minimum((topics, first, grown, second) in arb_change(true)) {
            let a1 = Assignor::Uniform.assign(&first, &topics, &Assignment::new());
            check_complete(&first, &topics, &a1);
            prop_assert!(spread(a1.values().map(|s| s.len())) <= 1);
            let a2 = Assignor::Uniform.assign(&second, &grown, &a1);
            check_complete(&second, &grown, &a2);
            prop_assert!(spread(a2.values().map(|s| s.len())) <= 1);
            prop_assert_eq!(moves(&a1, &a2), min_moves(&second, &grown, &a1));
            // Nothing changes: nothing moves.
            let again = Assignor::Uniform.assign(&second, &grown, &a2);
            prop_assert_eq!(&again, &a2);
        }

        #[test]
        fn uniform_with_differing_subscriptions_is_complete_and_stable((topics, first, grown, second) in arb_change(false)) {
            let a1 = Assignor::Uniform.assign(&first, &topics, &Assignment::new());
            check_complete(&first, &topics, &a1);
            let a2 = Assignor::Uniform.assign(&second, &grown, &a1);
            check_complete(&second, &grown, &a2);
            // No member can take a partition from a member with two or more more.
            for (id, parts) in &a2 {
                for (t, _) in parts {
                    for m in second.iter().filter(|m| m.topics.contains(t)) {
                        prop_assert!(a2[&m.id].len() + 1 >= parts.len(), "{} could relieve {id}", m.id);
                    }
                }
            }
            let again = Assignor::Uniform.assign(&second, &grown, &a2);
            prop_assert_eq!(&again, &a2);
        }
    }
}
