//! Subscriptions outlive their mailbox (RFC 3501 §6.3.6): LSUB and LIST (SUBSCRIBED) keep showing a
//! deleted mailbox's name, as non-existent, until it is unsubscribed.

use crate::imap::{Imap, bare_user, imap_addr, start_imap, strs};

#[tokio::test]
async fn a_deleted_mailbox_is_listed_subscribed_and_nonexistent_until_unsubscribed() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a CREATE Gone").await;
    c.run("b SUBSCRIBE Gone").await;
    assert_eq!(
        c.run("c DELETE Gone").await,
        strs(&["c OK DELETE completed"])
    );
    assert_eq!(
        c.run("d LSUB \"\" Gone").await,
        strs(&["* LSUB (\\Noselect) \"/\" \"Gone\"", "d OK LSUB completed"])
    );
    assert_eq!(
        c.run("e LIST (SUBSCRIBED) \"\" Go*").await,
        strs(&[
            "* LIST (\\Subscribed \\NonExistent) \"/\" \"Gone\"",
            "e OK LIST completed"
        ])
    );
    assert_eq!(
        c.run("f LIST \"\" Gone").await,
        strs(&["f OK LIST completed"]),
        "it does not exist"
    );
    assert_eq!(
        c.run("g UNSUBSCRIBE Gone").await,
        strs(&["g OK UNSUBSCRIBE completed"])
    );
    assert_eq!(
        c.run("h LSUB \"\" Gone").await,
        strs(&["h OK LSUB completed"])
    );
    assert_eq!(
        c.run("i UNSUBSCRIBE Gone").await,
        strs(&["i NO [NONEXISTENT] No such mailbox"])
    );
    // A kept name counts as a subscribed child: its parent stands in for it where the pattern stops.
    c.run("j CREATE a/b").await;
    c.run("k SUBSCRIBE a/b").await;
    c.run("l DELETE a/b").await;
    assert_eq!(
        c.run("m LSUB \"\" a").await,
        strs(&["* LSUB (\\Noselect) \"/\" \"a\"", "m OK LSUB completed"])
    );
    assert_eq!(
        c.run("n LIST (SUBSCRIBED RECURSIVEMATCH) \"\" a").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"a\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "n OK LIST completed"
        ])
    );
    // Never special-use.
    let special = c.run("o LIST (SUBSCRIBED SPECIAL-USE) \"\" *").await;
    assert_eq!(special.len(), 6, "{special:?}");
    assert!(
        !special.iter().any(|l| l.contains("NonExistent")),
        "{special:?}"
    );
}

/// A LIST whose patterns would cost too much against the account's names is refused at once
/// (`NO [LIMIT]`), before any matching; ordinary ones are answered.
#[tokio::test]
async fn a_list_too_costly_to_match_is_refused() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    for i in 0..50 {
        let name = format!("{}{i:02}", "a".repeat(480));
        let reply = c.run(&format!("c{i} CREATE {name}")).await;
        assert_eq!(reply, strs(&[&format!("c{i} OK CREATE completed")]));
    }
    let pattern = "*a".repeat(500);
    assert_eq!(
        c.run(&format!("l LIST \"\" {pattern}")).await,
        strs(&[
            "l NO [LIMIT] These patterns are too costly to match against this many mailboxes; use fewer or shorter ones"
        ])
    );
    let listed = c.run("m LIST \"\" *00").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[1].starts_with("m OK"), "{listed:?}");
}
