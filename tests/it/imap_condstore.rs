//! CONDSTORE turned on midway by a rev1 session (RFC 7162 §3.1) and ESEARCH's MODSEQ (RFC 7162 §3.1.5,
//! RFC 4731): exact responses, as Dovecot's imaptest checks them.

use crate::imap::{Imap, bare_user, deliver, imap_addr, start_imap, strs};

const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n";

#[tokio::test]
async fn condstore_enabled_while_selected_reports_highestmodseq_uids_and_modseqs() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    for _ in 0..3 {
        deliver(&s, "bob", MESSAGE).await;
    }
    // An earlier session saw them first: they are not \Recent to this one, whose FLAGS are then short.
    Imap::login(imap_addr(&s), "bob", "bob-password")
        .await
        .run("a SELECT INBOX")
        .await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    // Before CONDSTORE: a STORE's FETCH says neither UID nor MODSEQ.
    assert_eq!(
        c.run("b STORE 1 +FLAGS (\\Flagged)").await,
        strs(&["* 1 FETCH (FLAGS (\\Flagged))", "b OK STORE completed"])
    );
    // The first CONDSTORE-enabling command with a mailbox selected tells its HIGHESTMODSEQ, once.
    assert_eq!(
        c.run("c FETCH 1 (MODSEQ)").await,
        strs(&[
            "* OK [HIGHESTMODSEQ 4] Highest",
            "* 1 FETCH (MODSEQ (4))",
            "c OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("d FETCH 2 (MODSEQ)").await,
        strs(&["* 2 FETCH (MODSEQ (2))", "d OK FETCH completed"])
    );
    // From now on every FETCH a STORE causes carries UID and MODSEQ, silent or not.
    assert_eq!(
        c.run("e STORE 3 +FLAGS (\\Seen)").await,
        strs(&[
            "* 3 FETCH (FLAGS (\\Seen) UID 3 MODSEQ (5))",
            "e OK STORE completed"
        ])
    );
    assert_eq!(
        c.run("f STORE 2 +FLAGS.SILENT (\\Seen)").await,
        strs(&["* 2 FETCH (UID 2 MODSEQ (6))", "f OK STORE completed"])
    );
    // So does a FETCH that sets \Seen.
    c.run("g STORE 1 -FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(
        c.run("h FETCH 1 (BODY[TEXT])").await,
        strs(&[
            "* 1 FETCH (BODY[TEXT] {6}\r\nbody\r\n FLAGS (\\Seen) UID 1 MODSEQ (8))",
            "h OK FETCH completed"
        ])
    );
}

#[tokio::test]
async fn esearch_modseq_is_that_of_the_messages_it_reports() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    for _ in 0..3 {
        deliver(&s, "bob", MESSAGE).await;
    }
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a ENABLE CONDSTORE").await;
    c.run("b SELECT INBOX").await;
    // Modseqs after these: message 1 is 4, 3 is 5, 2 is 6.
    for (tag, seq) in [("c", 1), ("d", 3), ("e", 2)] {
        c.run(&format!("{tag} STORE {seq} +FLAGS.SILENT (\\Seen)"))
            .await;
    }
    let search = |tag: &str, returns: &str| {
        format!("{tag} SEARCH RETURN ({returns}) 1:3 MODSEQ \"/flags/\\\\seen\" all 1")
    };
    assert_eq!(
        c.run(&search("f", "MIN")).await,
        strs(&[
            "* ESEARCH (TAG \"f\") MIN 1 MODSEQ 4",
            "f OK SEARCH completed"
        ])
    );
    assert_eq!(
        c.run(&search("g", "MAX")).await,
        strs(&[
            "* ESEARCH (TAG \"g\") MAX 3 MODSEQ 5",
            "g OK SEARCH completed"
        ])
    );
    assert_eq!(
        c.run(&search("h", "MIN MAX")).await,
        strs(&[
            "* ESEARCH (TAG \"h\") MIN 1 MAX 3 MODSEQ 5",
            "h OK SEARCH completed"
        ])
    );
    assert_eq!(
        c.run(&search("i", "MIN COUNT")).await,
        strs(&[
            "* ESEARCH (TAG \"i\") MIN 1 COUNT 3 MODSEQ 6",
            "i OK SEARCH completed"
        ])
    );
    assert_eq!(
        c.run(&search("j", "ALL")).await,
        strs(&[
            "* ESEARCH (TAG \"j\") ALL 1:3 MODSEQ 6",
            "j OK SEARCH completed"
        ])
    );
}
