//! `\Recent` (RFC 3501 §2.3.2): a message is recent to the one session first told of it, by SELECT or
//! as new mail, in whichever process; EXAMINE and IMAP4rev2 sessions take it from no one.

use jmail::store::MailStore;

use crate::imap::{Imap, bare_user, deliver, imap_addr, start_imap, strs};

const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n";

/// The untagged RECENT of a command's responses.
fn recent_of(lines: &[String]) -> Option<&str> {
    lines
        .iter()
        .find(|l| l.ends_with(" RECENT"))
        .map(String::as_str)
}

#[tokio::test]
async fn each_message_is_recent_to_one_session_only() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", MESSAGE).await;
    deliver(&s, "bob", MESSAGE).await;
    let addr = imap_addr(&s);
    let mut a = Imap::login(addr, "bob", "bob-password").await;
    let mut b = Imap::login(addr, "bob", "bob-password").await;
    // Nobody has seen them: STATUS counts them, and EXAMINE shows them recent without taking them.
    assert_eq!(
        a.run("a1 STATUS INBOX (RECENT)").await,
        strs(&["* STATUS \"INBOX\" (RECENT 2)", "a1 OK STATUS completed"])
    );
    assert_eq!(
        recent_of(&b.run("b1 EXAMINE INBOX").await),
        Some("* 2 RECENT")
    );
    assert_eq!(
        b.run("b2 FETCH 1:* FLAGS").await,
        strs(&[
            "* 1 FETCH (FLAGS (\\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))",
            "b2 OK FETCH completed"
        ])
    );
    // SELECT takes them.
    assert_eq!(
        recent_of(&a.run("a2 SELECT INBOX").await),
        Some("* 2 RECENT")
    );
    assert_eq!(
        a.run("a3 STATUS INBOX (RECENT)").await,
        strs(&["* STATUS \"INBOX\" (RECENT 0)", "a3 OK STATUS completed"])
    );
    assert_eq!(
        recent_of(&b.run("b3 SELECT INBOX").await),
        Some("* 0 RECENT")
    );
    assert_eq!(
        b.run("b4 SEARCH RECENT").await,
        strs(&["* SEARCH", "b4 OK SEARCH completed"])
    );
    // New mail goes to whichever session hears of it first; the other is told it is not recent.
    deliver(&s, "bob", MESSAGE).await;
    assert_eq!(
        b.run("b5 NOOP").await,
        strs(&["* 3 EXISTS", "* 1 RECENT", "b5 OK NOOP completed"])
    );
    assert_eq!(
        a.run("a4 NOOP").await,
        strs(&["* 3 EXISTS", "* 2 RECENT", "a4 OK NOOP completed"])
    );
    assert_eq!(
        b.run("b6 UID SEARCH RECENT").await,
        strs(&["* SEARCH 3", "b6 OK SEARCH completed"])
    );
    assert_eq!(
        a.run("a5 SEARCH NEW").await,
        strs(&["* SEARCH 1 2", "a5 OK SEARCH completed"])
    );
    a.run("a6 STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(
        a.run("a7 SEARCH NEW").await,
        strs(&["* SEARCH 2", "a7 OK SEARCH completed"])
    );
    assert_eq!(
        a.run("a8 SEARCH OLD").await,
        strs(&["* SEARCH 3", "a8 OK SEARCH completed"])
    );
    // An expunged recent message is no longer counted.
    a.run("a9 STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        a.run("a10 EXPUNGE").await,
        strs(&["* 2 EXPUNGE", "a10 OK EXPUNGE completed"])
    );
    deliver(&s, "bob", MESSAGE).await;
    assert_eq!(
        a.run("a11 NOOP").await,
        strs(&["* 3 EXISTS", "* 2 RECENT", "a11 OK NOOP completed"])
    );
    // A client cannot set or clear it.
    assert_eq!(
        a.run("a12 STORE 1 -FLAGS (\\Recent \\Seen)").await,
        strs(&["* 1 FETCH (FLAGS (\\Recent))", "a12 OK STORE completed"])
    );
}

#[tokio::test]
async fn copies_and_appends_are_recent_in_their_mailbox() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", MESSAGE).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    c.run("b COPY 1 Archive").await;
    assert_eq!(
        c.run("c STATUS Archive (MESSAGES RECENT)").await,
        strs(&[
            "* STATUS \"Archive\" (MESSAGES 1 RECENT 1)",
            "c OK STATUS completed"
        ])
    );
    // Appended into the selected mailbox, it is this session's.
    c.send(b"d APPEND INBOX {5}\r\n").await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(b"hello\r\n").await;
    let appended = c.until("d").await;
    assert_eq!(
        appended[..2],
        strs(&["* 2 EXISTS", "* 2 RECENT"]),
        "{appended:?}"
    );
    assert_eq!(
        c.run("e FETCH 2 FLAGS").await,
        strs(&["* 2 FETCH (FLAGS (\\Recent))", "e OK FETCH completed"])
    );
    assert_eq!(
        recent_of(&c.run("f SELECT Archive").await),
        Some("* 1 RECENT")
    );
}

#[tokio::test]
async fn an_imap4rev2_session_has_no_recent_and_takes_none() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", MESSAGE).await;
    let addr = imap_addr(&s);
    let mut rev2 = Imap::login(addr, "bob", "bob-password").await;
    rev2.run("a ENABLE IMAP4rev2").await;
    let selected = rev2.run("b SELECT INBOX").await;
    assert_eq!(recent_of(&selected), None, "{selected:?}");
    assert_eq!(
        rev2.run("c FETCH 1 FLAGS").await,
        strs(&["* 1 FETCH (FLAGS ())", "c OK FETCH completed"])
    );
    let mut rev1 = Imap::login(addr, "bob", "bob-password").await;
    assert_eq!(
        recent_of(&rev1.run("a SELECT INBOX").await),
        Some("* 1 RECENT")
    );
}

/// New mail whose flags changed before the session heard of it comes out of the change log after mail
/// that came later: all of it is still the session's.
#[tokio::test]
async fn new_mail_reported_out_of_uid_order_is_all_recent() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    deliver(&s, "bob", MESSAGE).await;
    deliver(&s, "bob", MESSAGE).await;
    let bob = jmail::accounts::authenticate(s.store.as_ref(), "bob", "bob-password")
        .await
        .unwrap()
        .unwrap();
    s.store
        .update_flags(
            bob.inbox,
            &[1],
            jmail::store::FlagOp::Add,
            jmail::store::Flags::system(jmail::store::flags::FLAGGED),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        c.run("b NOOP").await,
        strs(&["* 2 EXISTS", "* 2 RECENT", "b OK NOOP completed"])
    );
    assert_eq!(
        c.run("c FETCH 1:2 FLAGS").await,
        strs(&[
            "* 1 FETCH (FLAGS (\\Flagged \\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))",
            "c OK FETCH completed"
        ])
    );
}
