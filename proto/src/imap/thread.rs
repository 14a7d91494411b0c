//! THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES over what delivery stored of each message
//! (its envelope and References), and the response's nested lists. Pure; the session hands in the
//! matched messages in sequence order.
//!
//! A stranger's headers decide the shape of the tree, so nothing here recurses (a chain of replies
//! may be as deep as the mailbox is long) and the loop checks of REFERENCES share one budget.

use std::collections::HashMap;
use std::sync::Arc;

use super::sort::{SortInput, SortKeys, base_subject_and_reply};
use crate::summary::{MESSAGE_ID_BYTES_MAX, first_message_id};

/// Steps up the tree REFERENCES may take, in all, to check that a link would not make a loop. Real
/// mail needs a few per message (a new message has no children, so needs none); a mailbox crafted so
/// that every link walks a long chain would otherwise cost the square of its size. Once spent, links
/// that need a check are not made, and the messages concerned start threads of their own.
pub const LOOP_CHECK_STEPS_MAX: usize = 10_000_000;

/// What threading needs of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInput {
    pub seq: u32,
    /// What the response calls it: its UID or its sequence number.
    pub number: u32,
    /// The sent date (RFC 5256 §2.2), in microseconds.
    pub sent: i64,
    /// The base subject, compared as SORT's SUBJECT compares (upper-cased).
    pub subject: Arc<str>,
    /// The subject marked a reply or forward.
    pub reply: bool,
    /// Its own Message-ID, without brackets.
    pub message_id: Option<Arc<str>>,
    /// Its ancestors, oldest first: References, or without any, In-Reply-To's first Message-ID.
    /// Shared with the kept keys it came from: threading a mailbox copies no text.
    pub references: Arc<[Arc<str>]>,
}

/// What REFERENCES reads of a message besides its sort keys: kept with them
/// ([`SortKeys::thread`]), so that threading a mailbox again reads nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadKeys {
    /// The subject marked a reply or forward.
    pub reply: bool,
    pub message_id: Option<Arc<str>>,
    pub references: Arc<[Arc<str>]>,
}

impl ThreadKeys {
    /// `references` are the stored summary's.
    pub fn new(m: &SortInput<'_>, references: Vec<String>) -> ThreadKeys {
        let envelope = m.envelope;
        let subject = envelope.and_then(|e| e.subject.as_deref()).unwrap_or("");
        let (_, reply) = base_subject_and_reply(subject);
        let id = |raw: Option<&String>| {
            raw.and_then(|raw| first_message_id(raw))
                .filter(|id| id.len() <= MESSAGE_ID_BYTES_MAX)
        };
        let references = match references.is_empty() {
            false => references,
            true => id(envelope.and_then(|e| e.in_reply_to.as_ref()))
                .into_iter()
                .collect(),
        };
        ThreadKeys {
            reply,
            message_id: id(envelope.and_then(|e| e.message_id.as_ref())).map(Arc::from),
            references: references.into_iter().map(Arc::from).collect(),
        }
    }

    /// Bytes of text it holds.
    pub fn bytes(&self) -> usize {
        self.message_id.as_ref().map_or(0, |id| id.len())
            + self
                .references
                .iter()
                .map(|r| r.len() + std::mem::size_of::<Arc<str>>() + 16)
                .sum::<usize>()
    }
}

impl ThreadInput {
    /// `references` are the stored summary's; `uid` picks the number the response gives.
    pub fn new(m: &SortInput<'_>, references: Vec<String>, uid: bool) -> ThreadInput {
        let keys = SortKeys::new(m).with_thread(ThreadKeys::new(m, references));
        let number = if uid { m.uid } else { m.seq };
        ThreadInput::from_keys(&keys, m.seq, number).expect("made with its thread keys")
    }

    /// The input of the message whose kept keys are `keys`: `None` when they were kept without
    /// their [`ThreadKeys`].
    pub fn from_keys(keys: &SortKeys, seq: u32, number: u32) -> Option<ThreadInput> {
        let thread = keys.thread.as_deref()?;
        Some(ThreadInput {
            seq,
            number,
            sent: keys.sent_micros,
            subject: keys.subject_shared(),
            reply: thread.reply,
            message_id: thread.message_id.clone(),
            references: thread.references.clone(),
        })
    }
}

impl ThreadInput {
    /// What ORDEREDSUBJECT reads of a message (its base subject and sent date), from its kept sort
    /// keys; without its Message-IDs, so not for REFERENCES.
    pub fn for_ordered_subject(keys: &SortKeys, seq: u32, number: u32) -> ThreadInput {
        ThreadInput {
            seq,
            number,
            sent: keys.sent_micros,
            subject: keys.subject_shared(),
            reply: false,
            message_id: None,
            references: Arc::from([]),
        }
    }
}

/// Threads: each node a message (its number) or a dummy standing for a message not there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forest {
    numbers: Vec<Option<u32>>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl Forest {
    /// THREAD's response after `* THREAD ` (empty when there are no threads): each thread in
    /// parentheses; a message and its only child separated by a space; several children each in
    /// parentheses (RFC 5256 §4's `(3 6 (4 23)(44 7 96))`).
    pub fn response(&self) -> String {
        enum Task {
            Open,
            Node(usize),
            Close,
        }
        let mut out = String::new();
        let mut tasks: Vec<Task> = Vec::new();
        for &root in self.roots.iter().rev() {
            tasks.extend([Task::Close, Task::Node(root), Task::Open]);
        }
        while let Some(task) = tasks.pop() {
            let mut node = match task {
                Task::Open => {
                    out.push('(');
                    continue;
                }
                Task::Close => {
                    out.push(')');
                    continue;
                }
                Task::Node(node) => node,
            };
            loop {
                let number = self.numbers[node];
                if let Some(number) = number {
                    out.push_str(&number.to_string());
                }
                match (self.children[node].as_slice(), number) {
                    ([], _) => break,
                    ([only], Some(_)) => {
                        out.push(' ');
                        node = *only;
                    }
                    ([only], None) => node = *only,
                    (many, _) => {
                        if number.is_some() {
                            out.push(' ');
                        }
                        for &child in many.iter().rev() {
                            tasks.extend([Task::Close, Task::Node(child), Task::Open]);
                        }
                        break;
                    }
                }
            }
        }
        out
    }

    fn add(&mut self, number: Option<u32>) -> usize {
        self.numbers.push(number);
        self.children.push(Vec::new());
        self.numbers.len() - 1
    }
}

/// THREAD=ORDEREDSUBJECT (RFC 5256 §3): messages sorted by base subject, then sent date (then sequence
/// number), one thread per base subject, the threads in the order of their first messages' sent dates.
/// In each, the first message is the parent of all the others.
pub fn ordered_subject(messages: &[ThreadInput]) -> Forest {
    let mut sorted: Vec<&ThreadInput> = messages.iter().collect();
    sorted.sort_by(|a, b| (&a.subject, a.sent, a.seq).cmp(&(&b.subject, b.sent, b.seq)));
    let mut forest = Forest::default();
    // (first message's date and sequence number, its node)
    let mut threads: Vec<((i64, u32), usize)> = Vec::new();
    let mut subject: Option<&str> = None;
    for m in sorted {
        let node = forest.add(Some(m.number));
        match threads.last() {
            Some(&(_, first)) if subject == Some(&*m.subject) => forest.children[first].push(node),
            _ => threads.push(((m.sent, m.seq), node)),
        }
        subject = Some(&m.subject);
    }
    threads.sort_by_key(|&(first, _)| first);
    forest.roots = threads.into_iter().map(|(_, node)| node).collect();
    forest
}

/// THREAD=REFERENCES (RFC 5256 §3): messages linked to their parents by Message-ID through References
/// (or In-Reply-To), dummies kept only where they join threads, threads with the same base subject
/// gathered, and siblings in sent-date order. `messages` must be in sequence order.
pub fn references(messages: &[ThreadInput]) -> Forest {
    let mut links = Links::new(messages);
    for (i, m) in messages.iter().enumerate() {
        links.add(i, m);
    }
    let mut tree = Tree::from_links(links, messages);
    tree.prune_dummies();
    tree.sort_siblings();
    tree.gather_subjects();
    tree.sort_siblings();
    tree.into_forest()
}

/// Step 1: containers linked child to parent.
struct Links<'a> {
    by_id: HashMap<&'a str, usize>,
    message: Vec<Option<usize>>,
    parent: Vec<Option<usize>>,
    child_count: Vec<usize>,
    steps_left: usize,
}

impl<'a> Links<'a> {
    fn new(messages: &[ThreadInput]) -> Links<'a> {
        Links {
            by_id: HashMap::with_capacity(messages.len()),
            message: Vec::with_capacity(messages.len()),
            parent: Vec::with_capacity(messages.len()),
            child_count: Vec::with_capacity(messages.len()),
            steps_left: LOOP_CHECK_STEPS_MAX,
        }
    }

    fn container(&mut self) -> usize {
        self.message.push(None);
        self.parent.push(None);
        self.child_count.push(0);
        self.message.len() - 1
    }

    fn by_id(&mut self, id: &'a str) -> usize {
        match self.by_id.get(id) {
            Some(&c) => c,
            None => {
                let c = self.container();
                self.by_id.insert(id, c);
                c
            }
        }
    }

    fn add(&mut self, index: usize, m: &'a ThreadInput) {
        // A message without a Message-ID, or with one an earlier message has, gets a container no
        // reference can name.
        let own = match m.message_id.as_deref() {
            Some(id) => match self.by_id(id) {
                c if self.message[c].is_none() => c,
                _ => self.container(),
            },
            None => self.container(),
        };
        self.message[own] = Some(index);
        // A: each reference the parent of the next, unless the next has one or it would make a loop.
        let chain: Vec<usize> = m.references.iter().map(|r| self.by_id(r)).collect();
        for pair in chain.windows(2) {
            if self.parent[pair[1]].is_none() && !self.would_loop(pair[0], pair[1]) {
                self.link(pair[0], pair[1]);
            }
        }
        // B: the message itself is the last reference's child, whatever parent the references of
        // other messages gave it.
        if let Some(old) = self.parent[own].take() {
            self.child_count[old] -= 1;
        }
        if let Some(&last) = chain.last()
            && !self.would_loop(last, own)
        {
            self.link(last, own);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.parent[child] = Some(parent);
        self.child_count[parent] += 1;
    }

    /// Making `child` a child of `parent` would close a loop: `child` is `parent` or one of its
    /// ancestors. Refused too when the budget of steps is spent.
    fn would_loop(&mut self, parent: usize, child: usize) -> bool {
        if parent == child {
            return true;
        }
        if self.child_count[child] == 0 {
            return false;
        }
        let mut at = parent;
        while let Some(up) = self.parent[at] {
            if up == child || self.steps_left == 0 {
                return true;
            }
            self.steps_left -= 1;
            at = up;
        }
        false
    }
}

/// Steps 2 to 6, over the linked containers.
struct Tree<'a> {
    messages: &'a [ThreadInput],
    message: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl<'a> Tree<'a> {
    /// Step 2: the roots are the containers without a parent.
    fn from_links(links: Links<'_>, messages: &'a [ThreadInput]) -> Tree<'a> {
        let mut children = vec![Vec::new(); links.message.len()];
        let mut roots = Vec::new();
        for (c, parent) in links.parent.iter().enumerate() {
            match parent {
                Some(p) => children[*p].push(c),
                None => roots.push(c),
            }
        }
        Tree {
            messages,
            message: links.message,
            children,
            roots,
        }
    }

    fn is_dummy(&self, c: usize) -> bool {
        self.message[c].is_none()
    }

    /// Step 3: a dummy without children goes; one with children gives way to them, but at the top
    /// only when it has one (so a dummy stays only as the root of two threads or more). Done top down
    /// in one pass: each message goes under the nearest message above it, or under its root. (Splicing
    /// bottom up copies a run of dummies' children once per dummy: quadratic in a chain of References
    /// that name no message in the mailbox.)
    fn prune_dummies(&mut self) {
        let mut pruned: Vec<Vec<usize>> = vec![Vec::new(); self.children.len()];
        for &root in &self.roots {
            // (a container, the message or root it hangs under once dummies are gone)
            let mut stack: Vec<(usize, usize)> =
                self.children[root].iter().map(|&c| (c, root)).collect();
            while let Some((c, above)) = stack.pop() {
                let below = match self.is_dummy(c) {
                    true => above,
                    false => {
                        pruned[above].push(c);
                        c
                    }
                };
                stack.extend(self.children[c].iter().map(|&child| (child, below)));
            }
        }
        self.children = pruned;
        let roots = std::mem::take(&mut self.roots);
        for root in roots {
            match (self.is_dummy(root), self.children[root].as_slice()) {
                (true, []) => {}
                (true, [only]) => self.roots.push(*only),
                _ => self.roots.push(root),
            }
        }
    }

    /// What a container sorts by: its message's sent date and sequence number, or a dummy's first
    /// child's. (After pruning, only roots are dummies, and their children are messages.)
    fn key(&self, c: usize) -> (i64, u32) {
        let message = self.message[c].or_else(|| {
            let first = *self.children[c].first()?;
            self.message[first]
        });
        message.map_or((i64::MAX, u32::MAX), |m| {
            (self.messages[m].sent, self.messages[m].seq)
        })
    }

    /// Steps 4 and 6: siblings, and then the roots, in sent-date order, ties in sequence order.
    fn sort_siblings(&mut self) {
        let mut children = std::mem::take(&mut self.children);
        for list in children.iter_mut().filter(|list| list.len() > 1) {
            list.sort_by_key(|&c| self.key(c));
        }
        self.children = children;
        let mut roots = std::mem::take(&mut self.roots);
        roots.sort_by_key(|&c| self.key(c));
        self.roots = roots;
    }

    /// The message a thread's subject is taken from: the root's, or a dummy root's first child's.
    fn subject_message(&self, root: usize) -> Option<&'a ThreadInput> {
        let c = match self.message[root] {
            Some(_) => root,
            None => *self.children[root].first()?,
        };
        self.message[c].map(|m| &self.messages[m])
    }

    fn is_reply(&self, c: usize) -> bool {
        self.message[c].is_some_and(|m| self.messages[m].reply)
    }

    /// Step 5: threads whose roots have the same base subject become one.
    fn gather_subjects(&mut self) {
        let subjects: Vec<Option<&'a str>> = self
            .roots
            .iter()
            .map(|&r| {
                self.subject_message(r)
                    .map(|m| &*m.subject)
                    .filter(|s| !s.is_empty())
            })
            .collect();
        // B: per subject, the root that stands for it: a dummy if any, else one that is not a reply.
        let mut table: HashMap<&str, usize> = HashMap::new();
        for (&r, subject) in self.roots.iter().zip(&subjects) {
            let Some(subject) = subject else { continue };
            let held = *table.entry(subject).or_insert(r);
            let dummy_over_message = self.is_dummy(r) && !self.is_dummy(held);
            if dummy_over_message || (self.is_reply(held) && !self.is_reply(r)) {
                table.insert(subject, r);
            }
        }
        // C: every other root with that subject joins it.
        let mut position: HashMap<usize, usize> = HashMap::new();
        for (i, &r) in self.roots.iter().enumerate() {
            position.insert(r, i);
        }
        const GONE: usize = usize::MAX;
        for (i, subject) in subjects.into_iter().enumerate() {
            let (r, Some(subject)) = (self.roots[i], subject) else {
                continue;
            };
            let held = table[subject];
            if r == GONE || held == r {
                continue;
            }
            match (self.is_dummy(held), self.is_dummy(r)) {
                (true, true) => {
                    let mut moved = std::mem::take(&mut self.children[r]);
                    self.children[held].append(&mut moved);
                    self.roots[i] = GONE;
                }
                (true, false) => {
                    self.children[held].push(r);
                    self.roots[i] = GONE;
                }
                (false, true) => {
                    self.children[r].push(held);
                    self.roots[position[&held]] = GONE;
                    table.insert(subject, r);
                }
                (false, false) if self.is_reply(r) && !self.is_reply(held) => {
                    self.children[held].push(r);
                    self.roots[i] = GONE;
                }
                (false, false) => {
                    let dummy = self.message.len();
                    self.message.push(None);
                    self.children.push(vec![held, r]);
                    let at = position[&held];
                    self.roots[at] = dummy;
                    position.insert(dummy, at);
                    self.roots[i] = GONE;
                    table.insert(subject, dummy);
                }
            }
        }
        self.roots.retain(|&r| r != GONE);
    }

    fn into_forest(self) -> Forest {
        let numbers = self
            .message
            .iter()
            .map(|m| m.map(|m| self.messages[m].number))
            .collect();
        Forest {
            numbers,
            children: self.children,
            roots: self.roots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::summarize_message;

    /// (Subject, Date, Message-ID, In-Reply-To, References) of messages 1, 2, ...
    type Mail<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

    fn inputs(mails: &[Mail<'_>], uid: bool) -> Vec<ThreadInput> {
        mails
            .iter()
            .enumerate()
            .map(|(i, (subject, date, id, in_reply_to, references))| {
                let mut raw = format!("Subject: {subject}\r\nDate: {date}\r\n");
                for (name, value) in [
                    ("Message-ID", id),
                    ("In-Reply-To", in_reply_to),
                    ("References", references),
                ] {
                    if !value.is_empty() {
                        raw.push_str(&format!("{name}: {value}\r\n"));
                    }
                }
                raw.push_str("\r\nbody\r\n");
                let summary = summarize_message(raw.as_bytes());
                let seq = i as u32 + 1;
                let input = SortInput {
                    seq,
                    uid: seq + 100,
                    arrival_micros: 0,
                    size: 0,
                    envelope: Some(&summary.envelope),
                };
                ThreadInput::new(&input, summary.references.clone(), uid)
            })
            .collect()
    }

    fn day(d: u32) -> String {
        format!("{d} Jan 2024 10:00:00 +0000")
    }

    #[test]
    fn ordered_subject_threads_by_base_subject_and_first_date() {
        let dates = [
            "2 Jan 2024 10:00:00 +0000",
            "2 Jan 2024 09:00:00 +0000",
            "1 Jan 2024 10:00:00 +0000",
            "3 Jan 2024 10:00:00 +0000",
            "1 Jan 2024 10:00:00 +0000",
            "4 Jan 2024 10:00:00 +0000",
            "5 Jan 2024 10:00:00 +0000",
        ];
        let subjects = ["Re: b", "a", "b", "Fwd: a", "c", "[x] b", "re: B"];
        let mails: Vec<Mail<'_>> = subjects
            .iter()
            .zip(dates)
            .map(|(s, d)| (*s, d, "", "", ""))
            .collect();
        let forest = ordered_subject(&inputs(&mails, false));
        // b (Jan 1, seq 3) and c (Jan 1, seq 5) tie on date: sequence order; a starts Jan 2.
        assert_eq!(forest.response(), "(3 (1)(6)(7))(5)(2 4)");
        assert_eq!(
            ordered_subject(&inputs(&mails, true)).response(),
            "(103 (101)(106)(107))(105)(102 104)"
        );
        assert_eq!(ordered_subject(&[]).response(), "");
    }

    #[test]
    fn references_link_replies_under_their_parents_in_date_order() {
        let (d1, d2, d3, d4, d5) = (day(1), day(2), day(3), day(4), day(5));
        let mails = [
            ("Hello", d1.as_str(), "<a@x>", "", ""),
            // Arrives before its parent's other reply, but was sent later.
            ("Re: Hello", d4.as_str(), "<c@x>", "<a@x>", "<a@x>"),
            // Without References, In-Reply-To names the parent.
            ("Re: Hello", d2.as_str(), "<b@x>", "<a@x>", ""),
            // References win over In-Reply-To.
            ("Re: Hello", d3.as_str(), "<d@x>", "<zzz@x>", "<a@x> <b@x>"),
            ("Other", d5.as_str(), "<e@x>", "", ""),
        ];
        let forest = references(&inputs(&mails, false));
        assert_eq!(forest.response(), "(1 (3 4)(2))(5)");
        assert_eq!(
            references(&inputs(&mails, true)).response(),
            "(101 (103 104)(102))(105)"
        );
    }

    #[test]
    fn references_without_their_parent_share_a_dummy_or_take_its_place() {
        let (d1, d2, d3) = (day(1), day(2), day(3));
        let mails = [
            // Two replies to a message not in the mailbox: a dummy joins them at the top.
            ("Re: Gone", d2.as_str(), "<b@x>", "", "<gone@x>"),
            ("Re: Gone", d1.as_str(), "<c@x>", "", "<gone@x>"),
            // A reply whose missing ancestors have one child each: it becomes the root.
            ("Re: Lone", d3.as_str(), "<e@x>", "", "<g1@x> <g2@x>"),
        ];
        assert_eq!(references(&inputs(&mails, false)).response(), "((2)(1))(3)");
    }

    #[test]
    fn references_gather_threads_by_subject() {
        let (d1, d2, d3, d4) = (day(1), day(2), day(3), day(4));
        let mails = [
            // Not linked by Message-ID, but the same base subject; the reply joins the original.
            ("Re: Plans", d2.as_str(), "<b@x>", "", ""),
            ("Plans", d1.as_str(), "<a@x>", "", ""),
            // Two originals with one subject: a dummy holds both.
            ("Lunch", d3.as_str(), "<c@x>", "", ""),
            ("Lunch", d4.as_str(), "<d@x>", "", ""),
            // No subject: never gathered.
            ("", d1.as_str(), "<e@x>", "", ""),
            ("", d2.as_str(), "<f@x>", "", ""),
        ];
        assert_eq!(
            references(&inputs(&mails, false)).response(),
            "(2 1)(5)(6)((3)(4))"
        );
    }

    #[test]
    fn references_survive_loops_duplicates_and_missing_ids() {
        let (d1, d2, d3, d4) = (day(1), day(2), day(3), day(4));
        let mails = [
            // Each claims the other as its parent: the second link would close a loop.
            ("x", d1.as_str(), "<a@x>", "", "<b@x>"),
            ("y", d2.as_str(), "<b@x>", "", "<a@x>"),
            // The same Message-ID again: a message of its own, referenced by no one.
            ("z", d3.as_str(), "<a@x>", "", ""),
            // No Message-ID, and a reference to itself by no name: a thread of its own.
            ("w", d4.as_str(), "", "", "<w@x> <w@x>"),
        ];
        assert_eq!(references(&inputs(&mails, false)).response(), "(2 1)(3)(4)");
    }

    #[test]
    fn any_links_thread_every_message_once() {
        // A small deterministic generator: many shapes of loops, duplicates and shared parents.
        let mut state = 0x2545_f491_u32;
        for len in 0..400 {
            let data: Vec<u8> = (0..len % 97)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            crate::imap::invariants::check_threads(&data);
        }
    }

    /// Messages 1..=n, sent in that order, Message-ID `m<seq>`, no subject, referencing what
    /// `references` gives for their number.
    fn numbered(n: u32, references: impl Fn(u32) -> Vec<String>) -> Vec<ThreadInput> {
        (1..=n)
            .map(|seq| ThreadInput {
                seq,
                number: seq,
                sent: i64::from(seq),
                subject: "".into(),
                reply: false,
                message_id: Some(format!("m{seq}").into()),
                references: references(seq).into_iter().map(Arc::from).collect(),
            })
            .collect()
    }

    #[test]
    fn a_long_run_of_missing_messages_prunes_in_linear_time() {
        // Each message names 20 messages no one has, the first of them the last of the message
        // before: one run of 19 dummies per message, a message hanging off each run. Splicing the
        // dummies bottom up would copy the messages below once per dummy above them.
        let n = 50_000u32;
        let messages = numbered(n, |seq| {
            (0..20).map(|k| format!("c{}", 19 * seq + k)).collect()
        });
        let response = references(&messages).response();
        // Every message hangs, through dummies only, under the first run's top: one thread of
        // siblings under a dummy.
        let numbers: Vec<String> = (1..=n).map(|s| format!("({s})")).collect();
        assert_eq!(response, format!("({})", numbers.concat()));
    }

    #[test]
    fn a_deep_chain_costs_no_recursion() {
        // 200,000 messages, each the reply to the one before: one thread, printed as one chain.
        let n = 200_000u32;
        let messages = numbered(n, |seq| match seq > 1 {
            true => vec![format!("m{}", seq - 1)],
            false => vec![],
        });
        let response = references(&messages).response();
        let numbers: Vec<String> = (1..=n).map(|s| s.to_string()).collect();
        assert_eq!(response, format!("({})", numbers.join(" ")));
        // A chain with a second child at every level nests as deep, still without recursion.
        let k = n as usize / 2;
        let forest = Forest {
            numbers: (0..n).map(Some).collect(),
            children: (0..2 * k)
                .map(|i| match i + 1 < k {
                    true => vec![i + 1, k + i],
                    false => vec![],
                })
                .collect(),
            roots: vec![0],
        };
        let response = forest.response();
        assert!(response.starts_with("(0 (1 (2 (3 "), "{}", &response[..20]);
        let tail = format!("({})({}))({}))", k - 1, 2 * k - 2, 2 * k - 3);
        assert!(response.contains(&tail));
        assert!(response.ends_with(&format!("({k}))")));
    }
}
