//! SORT and UID SORT (RFC 5256) with SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267): the keys, REVERSE,
//! ties in mailbox order, the search that chooses, the RETURN options, and the errors; THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3).

use crate::imap::{Imap, bare_user, imap_addr, start_imap, strs};

fn message(from: &str, to: &str, subject: &str, date: &str, body: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n{body}\r\n")
        .into_bytes()
}

#[tokio::test]
async fn sort_by_every_key_in_both_directions() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    // Appended in this order, with arrival times out of it.
    for (arrival, m) in [
        (
            "03-Jan-2024 00:00:00 +0000",
            message(
                "Carol <carol@example.org>",
                "zed@example.org",
                "Re: [list] Budget",
                "Tue, 2 Jan 2024 10:00:00 +0000",
                &"the longest body ".repeat(20),
            ),
        ),
        (
            "01-Jan-2024 00:00:00 +0000",
            message(
                "alice@example.org",
                "Bob <bob@example.org>",
                "Agenda",
                "Tue, 2 Jan 2024 12:00:00 +0500",
                "short",
            ),
        ),
        (
            "02-Jan-2024 00:00:00 +0000",
            message(
                "\"Zoe\" <bert@example.org>",
                "amy@example.org",
                "budget (fwd)",
                "not a date",
                &"a middling body ".repeat(8),
            ),
        ),
    ] {
        append(&mut c, &format!("\"{arrival}\" "), &m).await;
    }
    c.run("a SELECT INBOX").await;
    for (args, order) in [
        ("(ARRIVAL) UTF-8 ALL", "2 3 1"),
        ("(REVERSE ARRIVAL) UTF-8 ALL", "1 3 2"),
        ("(SIZE) UTF-8 ALL", "2 3 1"),
        // 12:00 +0500 is 07:00 UTC, before 10:00; a Date that does not parse sorts by arrival (the 2nd).
        ("(DATE) UTF-8 ALL", "3 2 1"),
        ("(FROM) UTF-8 ALL", "2 3 1"),
        ("(TO) UTF-8 ALL", "3 2 1"),
        ("(DISPLAYFROM) UTF-8 ALL", "2 1 3"),
        ("(DISPLAYTO) UTF-8 ALL", "3 2 1"),
        // Base subjects AGENDA, BUDGET, BUDGET: the tie goes by sequence number, or by the next key.
        ("(SUBJECT) UTF-8 ALL", "2 1 3"),
        ("(SUBJECT REVERSE SIZE) UTF-8 ALL", "2 1 3"),
        ("(SUBJECT SIZE) UTF-8 ALL", "2 3 1"),
        ("(REVERSE SUBJECT) US-ASCII ALL", "1 3 2"),
        ("(CC SIZE) UTF-8 ALL", "2 3 1"),
        ("(SIZE) UTF-8 NOT FROM alice", "3 1"),
        ("(SIZE) UTF-8 UNSEEN 2:3", "2 3"),
    ] {
        assert_eq!(
            c.run(&format!("s SORT {args}")).await,
            strs(&[&format!("* SORT {order}"), "s OK SORT completed"]),
            "SORT {args}"
        );
    }
    // ESORT (RFC 5267): MIN and MAX are the first and last in the sort's order, ALL keeps the order.
    for (command, answer) in [
        (
            "u1 SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) UTF-8 ALL",
            "* ESEARCH (TAG \"u1\") MIN 2 MAX 1 COUNT 3 ALL 2:3,1",
        ),
        (
            "u2 UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL",
            "* ESEARCH (TAG \"u2\") UID ALL 1,3,2",
        ),
        (
            "u3 SORT RETURN (MIN COUNT) (SIZE) UTF-8 SUBJECT nothing-like-it",
            "* ESEARCH (TAG \"u3\") COUNT 0",
        ),
    ] {
        let tag = &command[..2];
        assert_eq!(
            c.run(command).await,
            strs(&[answer, &format!("{tag} OK SORT completed")]),
            "{command}"
        );
    }
    assert_eq!(
        c.run("u4 SORT RETURN (PARTIAL 1:2) (SIZE) UTF-8 ALL").await,
        strs(&["u4 BAD Syntax error or unknown command"])
    );
    // THREAD=ORDEREDSUBJECT: one thread per base subject, by sent date; threads by their first date.
    assert_eq!(
        c.run("t1 THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        strs(&["* THREAD (3 1)(2)", "t1 OK THREAD completed"])
    );
    assert_eq!(
        c.run("t2 UID THREAD ORDEREDSUBJECT UTF-8 SUBJECT budget")
            .await,
        strs(&["* THREAD (3 1)", "t2 OK THREAD completed"])
    );
    assert_eq!(
        c.run("t3 THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing-like-it")
            .await,
        strs(&["* THREAD", "t3 OK THREAD completed"])
    );
    assert_eq!(
        c.run("t4 THREAD SOMETHINGELSE UTF-8 ALL").await,
        strs(&["t4 BAD Threading is by ORDEREDSUBJECT or REFERENCES"])
    );
    c.run("b STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    c.run("c EXPUNGE").await;
    assert_eq!(
        c.run("d UID SORT (REVERSE SIZE) UTF-8 ALL").await,
        strs(&["* SORT 3 2", "d OK SORT completed"])
    );
    assert_eq!(
        c.run("e SORT (SIZE) UTF-8 SUBJECT nothing-like-it").await,
        strs(&["* SORT", "e OK SORT completed"])
    );
    assert_eq!(
        c.run("f SORT (SIZE) KOI8-R ALL").await,
        strs(&["f NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"])
    );
    assert_eq!(
        c.run("g SORT (SIZE) ALL").await[0],
        "g BAD Syntax error or unknown command"
    );
    // With CONDSTORE's MODSEQ key, the highest modseq of what was found.
    assert_eq!(
        c.run("h SORT (ARRIVAL) UTF-8 MODSEQ 1").await,
        strs(&[
            "* OK [HIGHESTMODSEQ 5] Highest",
            "* SORT 1 2 (MODSEQ 3)",
            "h OK SORT completed"
        ])
    );
    assert_eq!(
        c.run("h2 SORT RETURN (MAX) (REVERSE ARRIVAL) UTF-8 MODSEQ 1")
            .await,
        strs(&[
            "* ESEARCH (TAG \"h2\") MAX 1 MODSEQ 3",
            "h2 OK SORT completed"
        ])
    );
    c.run("i UNSELECT").await;
    assert_eq!(
        c.run("j SORT (SIZE) UTF-8 ALL").await,
        strs(&["j BAD No mailbox selected"])
    );
}

/// The sort keys the server keeps between SORTs (by mailbox and UID) never stand in for another
/// message: the same UIDs in another mailbox are other messages, new mail is read and kept, and a
/// message expunged elsewhere stays in this session's answers until it is told of the expunge.
#[tokio::test]
async fn kept_sort_keys_follow_each_mailbox_and_its_changes() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    append_all(
        &mut c,
        &[
            ("Cherry", "Mon, 1 Jan 2024 10:00:00 +0000", ""),
            ("Apple", "Mon, 1 Jan 2024 11:00:00 +0000", ""),
            ("Banana", "Mon, 1 Jan 2024 12:00:00 +0000", ""),
        ],
    )
    .await;
    c.run("w CREATE Work").await;
    for subject in ["Banana", "Cherry", "Apple"] {
        let m = format!("From: a@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n");
        append_to(&mut c, "Work", "", m.as_bytes()).await;
    }
    let sort =
        async |c: &mut Imap, what: &str| c.run(&format!("s UID SORT {what} UTF-8 ALL")).await;
    c.run("a SELECT INBOX").await;
    let inbox = strs(&["* SORT 2 3 1", "s OK SORT completed"]);
    assert_eq!(sort(&mut c, "(SUBJECT)").await, inbox);
    assert_eq!(
        sort(&mut c, "(SUBJECT)").await,
        inbox,
        "again, from the kept keys"
    );
    c.run("a SELECT Work").await;
    assert_eq!(
        sort(&mut c, "(SUBJECT)").await,
        strs(&["* SORT 3 1 2", "s OK SORT completed"]),
        "Work's UIDs 1 to 3 are its own messages"
    );
    assert_eq!(
        sort(&mut c, "(REVERSE SUBJECT)").await,
        strs(&["* SORT 2 1 3", "s OK SORT completed"])
    );
    // Another session expunges Cherry (UID 1) and appends Avocado to INBOX.
    c.run("a SELECT INBOX").await;
    let mut other = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    other.run("b SELECT INBOX").await;
    other.run("b STORE 1 +FLAGS (\\Deleted)").await;
    other.run("b EXPUNGE").await;
    append_all(
        &mut other,
        &[("Avocado", "Mon, 1 Jan 2024 13:00:00 +0000", "")],
    )
    .await;
    // Until told, this session still has UID 1; the SORT tells it of both changes after its answer.
    let answer = sort(&mut c, "(SUBJECT)").await;
    assert_eq!(answer[0], "* SORT 2 3 1", "{answer:?}");
    assert!(answer.contains(&"* 1 EXPUNGE".to_string()), "{answer:?}");
    assert_eq!(answer.last().unwrap(), "s OK SORT completed");
    assert_eq!(
        sort(&mut c, "(SUBJECT)").await,
        strs(&["* SORT 2 4 3", "s OK SORT completed"]),
        "Apple, Avocado (new, read and kept), Banana"
    );
    assert_eq!(
        c.run("s SORT (DATE) UTF-8 2:3").await,
        strs(&["* SORT 2 3", "s OK SORT completed"]),
        "sequence numbers after the expunge: 2 is Banana, 3 Avocado"
    );
    // THREAD=ORDEREDSUBJECT reads the same kept keys: threads by their first sent date.
    assert_eq!(
        c.run("t UID THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        strs(&["* THREAD (2)(3)(4)", "t OK THREAD completed"])
    );
    assert_eq!(
        c.run("t THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        strs(&["* THREAD (1)(2)(3)", "t OK THREAD completed"])
    );
    // REFERENCES needs Message-IDs, which SORT did not keep: read again, then kept with them.
    for _ in 0..2 {
        assert_eq!(
            c.run("t UID THREAD REFERENCES UTF-8 ALL").await,
            strs(&["* THREAD (2)(3)(4)", "t OK THREAD completed"])
        );
    }
    assert_eq!(
        sort(&mut c, "(SUBJECT)").await,
        strs(&["* SORT 2 4 3", "s OK SORT completed"])
    );
}

/// APPENDs `m` to INBOX, `date` (an INTERNALDATE and a space, or nothing) before its literal.
async fn append(c: &mut Imap, date: &str, m: &[u8]) {
    append_to(c, "INBOX", date, m).await;
}

/// APPENDs `m` to `mailbox`, `date` as for [`append`].
async fn append_to(c: &mut Imap, mailbox: &str, date: &str, m: &[u8]) {
    c.send(format!("x APPEND {mailbox} {date}{{{}}}\r\n", m.len()).as_bytes())
        .await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(m).await;
    c.send(b"\r\n").await;
    assert!(c.until("x").await.last().unwrap().starts_with("x OK"));
}

/// Appends `(subject, date, headers)` to INBOX in order.
async fn append_all(c: &mut Imap, mails: &[(&str, &str, &str)]) {
    for (subject, date, headers) in mails {
        let m = format!(
            "From: a@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n{headers}\r\nhi\r\n"
        );
        append(c, "", m.as_bytes()).await;
    }
}

#[tokio::test]
async fn thread_by_references() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    append_all(
        &mut c,
        &[
            ("Plan", "1 Jan 2024 10:00 +0000", "Message-ID: <p1@x>\r\n"),
            (
                "Re: Plan",
                "3 Jan 2024 10:00 +0000",
                "Message-ID: <p2@x>\r\nReferences: <p1@x>\r\n",
            ),
            ("Other", "2 Jan 2024 10:00 +0000", "Message-ID: <o1@x>\r\n"),
            // No References: In-Reply-To names the parent.
            (
                "Re: Plan",
                "2 Jan 2024 10:00 +0000",
                "Message-ID: <p3@x>\r\nIn-Reply-To: <p1@x>\r\n",
            ),
            (
                "Re: Re: Plan",
                "4 Jan 2024 10:00 +0000",
                "Message-ID: <p4@x>\r\nReferences: <p1@x>\r\n <p2@x>\r\n",
            ),
            // Linked to nothing, but a reply to the subject of the first thread: it joins it.
            (
                "Fwd: Other",
                "5 Jan 2024 10:00 +0000",
                "Message-ID: <f1@x>\r\n",
            ),
        ],
    )
    .await;
    c.run("a SELECT INBOX").await;
    // The replies to 1 by sent date (4 before 2), 5 under 2; 6 under 3 by subject; threads by date.
    assert_eq!(
        c.run("t1 THREAD REFERENCES UTF-8 ALL").await,
        strs(&["* THREAD (1 (4)(2 5))(3 6)", "t1 OK THREAD completed"])
    );
    assert_eq!(
        c.run("t2 UID THREAD REFERENCES US-ASCII SUBJECT plan NOT 4")
            .await,
        strs(&["* THREAD (1 2 5)", "t2 OK THREAD completed"])
    );
    // With 2 gone, 5 names it only in References: a missing parent with one child gives way to it.
    c.run("b STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    c.run("c EXPUNGE").await;
    assert_eq!(
        c.run("t3 THREAD REFERENCES UTF-8 ALL").await,
        strs(&["* THREAD (1 (3)(4))(2 5)", "t3 OK THREAD completed"])
    );
    assert_eq!(
        c.run("t4 THREAD REFERENCES UTF-8 SUBJECT nothing-like-it")
            .await,
        strs(&["* THREAD", "t4 OK THREAD completed"])
    );
}
