//! Answers an IMAP compliance suite checks against the RFCs' grammar and Dovecot's choices: hierarchy
//! levels that are no mailbox, INBOX in any case in a pattern, what a read-only mailbox permits,
//! empty item lists, a stray line during IDLE, CHECK outside a mailbox, names that are no names.

use crate::imap::{Imap, bare_user, deliver, imap_addr, start_imap, strs};

const HELLO: &[u8] = b"From: a@example.org\r\nSubject: hello\r\n\r\nhi\r\n";

#[tokio::test]
async fn levels_inbox_read_only_empty_lists_idle_and_check() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;

    // A parent deleted under its children stays a level of the tree, \Noselect (RFC 3501 §6.3.8).
    c.run("a1 CREATE p/q/r").await;
    assert_eq!(
        c.run("a2 DELETE p").await,
        strs(&["a2 OK DELETE completed"])
    );
    let top = c.run("a3 LIST \"\" %").await;
    assert!(
        top.contains(&"* LIST (\\Noselect \\HasChildren) \"/\" \"p\"".to_string()),
        "{top:?}"
    );
    assert_eq!(
        c.run("a4 LIST \"\" p/%").await,
        strs(&[
            "* LIST (\\HasChildren) \"/\" \"p/q\"",
            "a4 OK LIST completed"
        ])
    );
    c.run("a5 DELETE p/q").await;
    assert_eq!(
        c.run("a6 LIST p/ %").await,
        strs(&[
            "* LIST (\\Noselect \\HasChildren) \"/\" \"p/q\"",
            "a6 OK LIST completed"
        ])
    );
    // `*` lists what exists; the pattern without `%` does not invent levels.
    assert_eq!(
        c.run("a7 LIST \"\" p*").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"p/q/r\"",
            "a7 OK LIST completed"
        ])
    );

    // INBOX in any case, a wildcard after it too; other names stay case-sensitive.
    c.run("b1 CREATE INBOX/sub").await;
    c.run("b2 CREATE INBOXES").await;
    assert_eq!(
        c.run("b3 LIST \"\" inbox*").await,
        strs(&[
            "* LIST (\\HasChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren) \"/\" \"INBOX/sub\"",
            "b3 OK LIST completed"
        ])
    );

    // EXAMINE permits no flag change.
    let examine = c.run("c1 EXAMINE INBOX").await;
    assert!(
        examine.contains(&"* OK [PERMANENTFLAGS ()] Read-only mailbox".to_string()),
        "{examine:?}"
    );

    // Each item asked twice is answered once.
    assert_eq!(
        c.run("c2 FETCH 1 (UID FLAGS UID)").await,
        strs(&[
            "* 1 FETCH (UID 1 FLAGS (\\Recent))",
            "c2 OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("c3 SEARCH RETURN (MIN COUNT MIN) ALL").await,
        strs(&[
            "* ESEARCH (TAG \"c3\") MIN 1 COUNT 1",
            "c3 OK SEARCH completed"
        ])
    );

    // The grammar asks for at least one FETCH and one STATUS item.
    assert_eq!(
        c.run("d1 FETCH 1 ()").await,
        strs(&["d1 BAD Empty FETCH item list"])
    );
    assert_eq!(
        c.run("d2 STATUS INBOX ()").await,
        strs(&["d2 BAD Empty STATUS item list"])
    );

    // A stray line during IDLE ends it with a tagged BAD; the next command is read as one.
    c.run("e0 SELECT INBOX").await;
    c.send(b"e1 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    c.send(b"garbage\r\n").await;
    assert_eq!(c.line().await, "e1 BAD Expected DONE");
    assert_eq!(c.run("e2 NOOP").await, strs(&["e2 OK NOOP completed"]));

    // A right-nested chain of 30 ORs (a search over many addresses) parses and runs.
    let chain: String = (2..=31).map(|n| format!("OR UID {n} ")).collect();
    assert_eq!(
        c.run(&format!("e3 UID SEARCH {chain}UID 1")).await,
        strs(&["* SEARCH 1", "e3 OK SEARCH completed"])
    );

    // CHECK is for a selected mailbox.
    assert_eq!(c.run("f1 CHECK").await, strs(&["f1 OK CHECK completed"]));
    c.run("f2 UNSELECT").await;
    assert_eq!(
        c.run("f3 CHECK").await,
        strs(&["f3 BAD No mailbox selected"])
    );

    // A name that is a valid string but no modified UTF-7, and an empty APPEND: NO, not BAD.
    assert_eq!(
        c.run("g1 CREATE \"bad&Jjo\"").await,
        strs(&["g1 NO Mailbox name is not modified UTF-7 (RFC 3501 5.1.3)"])
    );
    c.send(b"g2 APPEND INBOX {0}\r\n").await;
    let reply = c.line().await;
    let reply = match reply.starts_with('+') {
        true => {
            c.send(b"\r\n").await;
            c.line().await
        }
        false => reply,
    };
    assert_eq!(reply, "g2 NO An empty message cannot be appended");
}

/// SEARCHRES (RFC 5182, part of IMAP4rev2): `SEARCH RETURN (SAVE)` keeps its result as `$`, which
/// FETCH, STORE, COPY and SEARCH then name; it follows expunges, is emptied by a failed saving search
/// and by SELECT, and `$` as a search string is still a string.
#[tokio::test]
async fn the_saved_search_result() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    for n in 1..=5 {
        let raw = format!("From: a@example.org\r\nSubject: m{n}\r\n\r\nbody {n}\r\n");
        deliver(&s, "bob", raw.as_bytes()).await;
    }
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    c.run("b STORE 2,4 +FLAGS.SILENT (\\Flagged)").await;
    // SAVE alone answers with the tagged OK only.
    assert_eq!(
        c.run("c SEARCH RETURN (SAVE) FLAGGED").await,
        strs(&["c OK SEARCH completed"])
    );
    assert_eq!(
        c.run("d FETCH $ (UID)").await,
        strs(&[
            "* 2 FETCH (UID 2)",
            "* 4 FETCH (UID 4)",
            "d OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("e SEARCH NOT $").await,
        strs(&["* SEARCH 1 3 5", "e OK SEARCH completed"])
    );
    assert_eq!(
        c.run("f UID SEARCH UID $ SUBJECT m4").await,
        strs(&["* SEARCH 4", "f OK SEARCH completed"])
    );
    assert_eq!(
        c.run("g UID STORE $ +FLAGS (\\Seen)").await,
        strs(&[
            "* 2 FETCH (FLAGS (\\Flagged \\Seen \\Recent) UID 2)",
            "* 4 FETCH (FLAGS (\\Flagged \\Seen \\Recent) UID 4)",
            "g OK STORE completed"
        ])
    );
    assert_eq!(
        c.run("h COPY $ Archive").await,
        strs(&["h OK [COPYUID 6 2,4 1:2] COPY completed"])
    );
    // An expunged message leaves `$`; the numbers are the session's after the expunge.
    c.run("i STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        c.run("j EXPUNGE").await,
        strs(&["* 2 EXPUNGE", "j OK EXPUNGE completed"])
    );
    assert_eq!(
        c.run("k FETCH $ (UID)").await,
        strs(&["* 3 FETCH (UID 4)", "k OK FETCH completed"])
    );
    // SAVE with MIN keeps the first match only, and ESEARCH answers what else was asked.
    assert_eq!(
        c.run("l UID SEARCH RETURN (SAVE MIN) ALL").await,
        strs(&["* ESEARCH (TAG \"l\") UID MIN 1", "l OK SEARCH completed"])
    );
    assert_eq!(
        c.run("m UID FETCH $ (UID)").await,
        strs(&["* 1 FETCH (UID 1)", "m OK FETCH completed"])
    );
    // `$` after SUBJECT is a string to look for.
    assert_eq!(
        c.run("n SEARCH SUBJECT $").await,
        strs(&["* SEARCH", "n OK SEARCH completed"])
    );
    // A saving search that fails leaves `$` empty; an empty `$` names nothing.
    let failed = c.run("o SEARCH RETURN (SAVE) CHARSET KOI8-R ALL").await;
    assert!(failed[0].starts_with("o NO [BADCHARSET"), "{failed:?}");
    assert_eq!(
        c.run("p FETCH $ (UID)").await,
        strs(&["p OK FETCH completed"])
    );
    assert_eq!(
        c.run("q SEARCH NOT $").await,
        strs(&["* SEARCH 1 2 3 4", "q OK SEARCH completed"])
    );
    // SELECT empties it.
    c.run("r SEARCH RETURN (SAVE) ALL").await;
    c.run("s SELECT INBOX").await;
    assert_eq!(
        c.run("t FETCH $ (UID)").await,
        strs(&["t OK FETCH completed"])
    );
    // Without a mailbox, `$` is a selected-state set like any other.
    c.run("u UNSELECT").await;
    assert_eq!(
        c.run("v FETCH $ (UID)").await,
        strs(&["v BAD No mailbox selected"])
    );
}

/// A logged-in client's line may reach 64 KiB (a sparse UID set grows past the 8 KiB a stranger
/// gets); past it the session ends with BYE.
#[tokio::test]
async fn long_uid_sets_after_login() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    let set = |n: u32| {
        (1..=n)
            .map(|i| (i * 2 - 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let long = set(4_000); // about 23 KB
    assert!(long.len() > 16 * 1024);
    assert_eq!(
        c.run(&format!("b UID FETCH {long} (UID)")).await,
        strs(&["* 1 FETCH (UID 1)", "b OK FETCH completed"])
    );
    c.send(format!("c UID FETCH {} (UID)\r\n", set(12_000)).as_bytes())
        .await;
    assert_eq!(c.line().await, "* BYE Line too long");
}

/// A keyword new to the mailbox is announced (FLAGS and PERMANENTFLAGS) before the first response
/// that carries it: to the session that set it, to another at its next NOOP, and in a FETCH.
#[tokio::test]
async fn new_keywords_are_announced_before_they_are_used() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    deliver(&s, "bob", HELLO).await;
    let mut a = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    let mut b = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    a.run("a1 SELECT INBOX").await;
    b.run("b1 SELECT INBOX").await;
    let flags = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Later)";
    let permanent = "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Later \\*)] Flags permitted";
    assert_eq!(
        a.run("a2 STORE 1 +FLAGS ($Later)").await,
        strs(&[
            flags,
            permanent,
            "* 1 FETCH (FLAGS (\\Recent $Later))",
            "a2 OK STORE completed"
        ])
    );
    // Told once: the same keyword again needs no FLAGS.
    assert_eq!(
        a.run("a3 STORE 2 +FLAGS ($later)").await,
        strs(&[
            "* 2 FETCH (FLAGS (\\Recent $Later))",
            "a3 OK STORE completed"
        ])
    );
    let noop = b.run("b2 NOOP").await;
    assert_eq!(noop[..2], strs(&[flags, permanent]), "{noop:?}");
    assert_eq!(noop.last().unwrap(), "b2 OK NOOP completed");
    // A session that selects later hears of it at SELECT, and a FETCH of it needs nothing more.
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    let select = c.run("c1 EXAMINE INBOX").await;
    assert_eq!(select[0], flags, "{select:?}");
    assert_eq!(
        c.run("c2 FETCH 1 (FLAGS)").await,
        strs(&["* 1 FETCH (FLAGS ($Later))", "c2 OK FETCH completed"])
    );
}

/// A mailbox another session deletes while this one has it selected ends this session with BYE,
/// at its next command or while it idles (as Dovecot does): nothing it knows of the mailbox holds.
#[tokio::test]
async fn a_selected_mailbox_deleted_elsewhere_ends_the_session() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut a = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    a.run("a1 CREATE Q").await;
    a.run("a2 APPEND Q {4+}\r\nhi\r\n").await;
    let mut b = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    b.run("b1 SELECT Q").await;
    c.run("c1 SELECT Q").await;
    c.send(b"c2 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    assert_eq!(
        a.run("a3 DELETE Q").await,
        strs(&["a3 OK DELETE completed"])
    );
    assert_eq!(
        c.line().await,
        "* BYE The selected mailbox was deleted; please log in again"
    );
    b.send(b"b2 NOOP\r\n").await;
    assert_eq!(
        b.line().await,
        "* BYE The selected mailbox was deleted; please log in again"
    );
    assert!(b.closed().await.0);
}

/// UTF8=ACCEPT (RFC 9755): once enabled, names go both ways in UTF-8 and APPEND takes `UTF8 (...)`;
/// a session that did not enable it keeps modified UTF-7 and literals for 8-bit text.
#[tokio::test]
async fn utf8_accept_names_and_append() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    let mut rev1 = Imap::login(imap_addr(&s), "bob", "bob-password").await;

    assert_eq!(
        c.run("u1 ENABLE UTF8=ACCEPT").await,
        strs(&["* ENABLED UTF8=ACCEPT", "u1 OK ENABLE completed"])
    );
    assert_eq!(
        c.run("u2 ENABLE UTF8=ACCEPT").await,
        strs(&["* ENABLED", "u2 OK ENABLE completed"])
    );
    assert_eq!(
        c.run("u3 CREATE \"Café\"").await,
        strs(&["u3 OK CREATE completed"])
    );
    assert_eq!(
        c.run("u4 LIST \"\" Caf*").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"Café\"",
            "u4 OK LIST completed"
        ])
    );
    assert_eq!(
        rev1.run("r1 LIST \"\" Caf*").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"Caf&AOk-\"",
            "r1 OK LIST completed"
        ])
    );

    // A message whose header is UTF-8 (RFC 6532), appended in the wrapper, synchronizing literal8.
    let message = "From: José <jose@example.org>\r\nSubject: Grüße\r\n\r\nhi\r\n";
    c.send(
        format!(
            "u5 APPEND \"Café\" (\\Seen) UTF8 (~{{{}}}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(c.line().await.starts_with("+ "));
    c.send(format!("{message})\r\n").as_bytes()).await;
    let appended = c.until("u5").await;
    assert!(
        appended[0].starts_with("u5 OK [APPENDUID ")
            && appended[0].ends_with(" 1] APPEND completed"),
        "{appended:?}"
    );
    c.run("u6 SELECT \"Café\"").await;
    assert_eq!(
        c.run("u7 FETCH 1 (FLAGS BODY[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)")
            .await,
        strs(&[
            &format!(
                "* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[HEADER.FIELDS (SUBJECT)] {{20}}\r\nSubject: Grüße\r\n\r\n \
                 RFC822.SIZE {})",
                message.len()
            ),
            "u7 OK FETCH completed"
        ])
    );
    // 8-bit text in ENVELOPE: quoted to this session, a literal to the rev1 one.
    let envelope = c.run("u8 FETCH 1 (ENVELOPE)").await;
    assert!(envelope[0].contains("\"Grüße\""), "{envelope:?}");
    rev1.run("r2 SELECT \"Caf&AOk-\"").await;
    let envelope = rev1.run("r3 FETCH 1 (ENVELOPE)").await;
    assert!(envelope[0].contains("{7}\r\nGrüße"), "{envelope:?}");

    // The wrapper around a plain literal, or around two messages, is no APPEND this server reads.
    assert_eq!(
        c.run("u9 APPEND INBOX UTF8 (~{2+}\r\nhi) UTF8 (~{2+}\r\nhi)")
            .await,
        strs(&["u9 BAD Syntax error or unknown command"])
    );
}

#[tokio::test]
async fn enable_while_selected_an_origin_alone_and_nul_bytes_as_imaptest_sends_them() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(
        &s,
        "bob",
        b"From: a@example.org\r\nSubject: nul\r\n\r\nnul\0byte\r\n",
    )
    .await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    // A partial of an origin alone is from there to the end (Dovecot's reading; imaptest sends it).
    // A NUL, which a plain literal cannot carry (CHAR8), is sent as 0x80, as Dovecot does; BINARY
    // sends it as it is, in a literal8.
    assert_eq!(
        c.run_bytes("b FETCH 1 (BODY.PEEK[TEXT]<3> BINARY.PEEK[1]<3>)")
            .await,
        b"* 1 FETCH (BODY[TEXT]<3> {7}\r\n\x80byte\r\n BINARY[1]<3> ~{7}\r\n\0byte\r\n)\r\n\
b OK FETCH completed\r\n"
    );
    // ENABLE with a mailbox selected (RFC 9051 §6.3.1: the client's mistake, not refused).
    assert_eq!(
        c.run("c ENABLE CONDSTORE").await,
        strs(&[
            "* ENABLED CONDSTORE",
            "* OK [HIGHESTMODSEQ 1] Highest",
            "c OK ENABLE completed"
        ])
    );
    let fetched = c.run("d FETCH 1 (FLAGS)").await;
    assert!(fetched[0].contains("MODSEQ ("), "{fetched:?}");
}

#[tokio::test]
async fn a_search_of_more_keys_than_any_client_sends_is_refused() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    let keys = vec!["1:*"; jmail_proto::imap::search::KEYS_MAX + 1].join(" ");
    assert_eq!(
        c.run(&format!("b SEARCH {keys}")).await,
        strs(&["b NO [LIMIT] At most 256 keys in one search"])
    );
    let nested = format!("({})", vec!["(ALL)"; 200].join(" "));
    assert_eq!(
        c.run(&format!("c UID SEARCH {nested}")).await,
        strs(&["c NO [LIMIT] At most 256 keys in one search"])
    );
    let enough = vec!["1:*"; 200].join(" ");
    assert_eq!(
        c.run(&format!("d SEARCH {enough}")).await,
        strs(&["* SEARCH 1", "d OK SEARCH completed"])
    );
}
