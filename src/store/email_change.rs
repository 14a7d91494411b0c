//! One Email changed as a whole (JMAP's Email/set): an Email is a message's stored bytes with a copy in
//! each of its mailboxes, and a create, update or destroy of it is one transaction in the backend, so a
//! refusal anywhere (quota, a mailbox's keyword limit, a mailbox gone meanwhile) changes nothing, and a
//! concurrent expunge or move is seen whole or not at all (RFC 8620 §5.3: each change is atomic). This
//! file holds what is not SQL: where the copies are to go and what that takes; each backend runs the plan
//! with its own copy, flag and expunge statements.

use std::collections::BTreeMap;

use super::{FlagOp, Flags, Located, MailboxId};

/// Where an Email is to be after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// In the mailboxes it is in now.
    Unchanged,
    /// In exactly these.
    Exactly(Vec<MailboxId>),
    /// In those it is in when the change runs, plus `add`, less `remove` (a patch of `mailboxIds/...`
    /// paths, resolved inside the transaction rather than against what the client last read).
    Patched {
        add: Vec<MailboxId>,
        remove: Vec<MailboxId>,
    },
    /// In none: every copy expunged (a destroy).
    Nowhere,
}

/// A change to one Email: where it goes, then keyword steps for every copy it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChange {
    pub placement: Placement,
    /// Applied in order to every copy that stays (copies made or moved by the change included).
    pub keywords: Vec<(FlagOp, Flags)>,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChanged {
    Done,
    /// The account holds no copy of the Email (never did, or it is gone).
    NotFound,
    /// The change would leave the Email in no mailbox; nothing was done.
    NoMailbox,
}

/// The steps that place an Email's copies in a target set of mailboxes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Mailboxes the Email is copied into (the copies count against the quota).
    pub copy_to: Vec<MailboxId>,
    /// Copies moved out of a mailbox left into one joined: a swap needs no room in the quota.
    pub moves: Vec<(MailboxId, Vec<u32>, MailboxId)>,
    /// Copies expunged from mailboxes left with none joined in their place.
    pub expunges: Vec<(MailboxId, Vec<u32>)>,
    /// The copies already where they are to be, mailbox by mailbox; a backend adds those it makes.
    pub staying: BTreeMap<MailboxId, Vec<u32>>,
}

/// An Email's copies, mailbox by mailbox.
pub fn by_mailbox(copies: &[Located]) -> BTreeMap<MailboxId, Vec<u32>> {
    let mut out: BTreeMap<MailboxId, Vec<u32>> = BTreeMap::new();
    for c in copies {
        out.entry(c.mailbox).or_default().push(c.uid);
    }
    out
}

/// The mailboxes the Email is to be in, sorted; `None` when that is none at all and the change is not a
/// destroy.
fn target(
    current: &BTreeMap<MailboxId, Vec<u32>>,
    placement: &Placement,
) -> Option<Vec<MailboxId>> {
    let mut target: Vec<MailboxId> = match placement {
        Placement::Unchanged => current.keys().copied().collect(),
        Placement::Exactly(set) => set.clone(),
        Placement::Patched { add, remove } => current
            .keys()
            .chain(add)
            .filter(|m| !remove.contains(m))
            .copied()
            .collect(),
        Placement::Nowhere => return Some(Vec::new()),
    };
    target.sort_unstable();
    target.dedup();
    (!target.is_empty()).then_some(target)
}

/// The steps from `copies` (one Email's, all in one account) to `placement`; `None` when it would leave
/// the Email in no mailbox. Each mailbox left is swapped for one joined where it can be (a move, which
/// keeps the copy's flags and needs no quota); the rest are copies and expunges.
pub fn plan(copies: &[Located], placement: &Placement) -> Option<Plan> {
    let mut current = by_mailbox(copies);
    let target = target(&current, placement)?;
    let joined: Vec<MailboxId> = target
        .iter()
        .filter(|m| !current.contains_key(m))
        .copied()
        .collect();
    let mut joined = joined.into_iter();
    let left: Vec<MailboxId> = current
        .keys()
        .filter(|m| !target.contains(m))
        .copied()
        .collect();
    let mut plan = Plan::default();
    for from in left {
        let uids = current.remove(&from).unwrap_or_default();
        match joined.next() {
            Some(to) => plan.moves.push((from, uids, to)),
            None => plan.expunges.push((from, uids)),
        }
    }
    plan.copy_to = joined.collect();
    plan.staying = current;
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(mailbox: MailboxId, uid: u32) -> Located {
        Located {
            blob: 7,
            mailbox,
            uid,
        }
    }

    #[test]
    fn a_mailbox_swapped_is_a_move_and_the_rest_copies_and_expunges() {
        let copies = [at(1, 10), at(2, 20), at(2, 21), at(3, 30)];
        let p = plan(&copies, &Placement::Exactly(vec![3, 4, 5])).unwrap();
        assert_eq!(p.moves, vec![(1, vec![10], 4), (2, vec![20, 21], 5)]);
        assert!(p.copy_to.is_empty() && p.expunges.is_empty());
        assert_eq!(p.staying, BTreeMap::from([(3, vec![30])]));
        let p = plan(&copies, &Placement::Exactly(vec![1])).unwrap();
        assert_eq!(p.expunges, vec![(2, vec![20, 21]), (3, vec![30])]);
        let p = plan(&[at(1, 10)], &Placement::Exactly(vec![2, 3])).unwrap();
        assert_eq!((p.moves, p.copy_to), (vec![(1, vec![10], 2)], vec![3]));
    }

    #[test]
    fn a_patch_is_resolved_against_the_copies_as_they_are() {
        let copies = [at(1, 10), at(2, 20)];
        let patch =
            |add: Vec<MailboxId>, remove: Vec<MailboxId>| Placement::Patched { add, remove };
        let p = plan(&copies, &patch(vec![3, 1], vec![2])).unwrap();
        assert_eq!(p.moves, vec![(2, vec![20], 3)], "2 left, 3 joined: a move");
        assert_eq!(p.staying, BTreeMap::from([(1, vec![10])]));
        assert_eq!(
            plan(&copies, &patch(vec![], vec![1, 2])),
            None,
            "in no mailbox"
        );
        let same = plan(&copies, &Placement::Unchanged).unwrap();
        assert_eq!(same.staying, by_mailbox(&copies));
        assert!(same.moves.is_empty() && same.copy_to.is_empty() && same.expunges.is_empty());
        assert_eq!(plan(&copies, &Placement::Exactly(vec![])), None);
    }

    #[test]
    fn nowhere_expunges_every_copy() {
        let p = plan(&[at(1, 10), at(1, 11), at(2, 20)], &Placement::Nowhere).unwrap();
        assert_eq!(p.expunges, vec![(1, vec![10, 11]), (2, vec![20])]);
        assert!(p.staying.is_empty() && p.moves.is_empty() && p.copy_to.is_empty());
    }
}
