//! IMAP with real clients: Python's imaplib and imapclient over every command (plain, STARTTLS and
//! IMAPS), mbsync (isync) syncing a Maildir both ways and again after changes on the server, neomutt
//! reading, flagging and moving under tmux, and curl's imap:// and imaps://. Outputs are compared
//! exactly, and stored state is checked.

use std::path::Path;
use std::time::Duration;

use jmail::server::Service;
use jmail::store::{MailStore, flags};

use crate::harness::{TestServer, run_client};
use crate::imap::{bare_user, deliver};

/// How long one client run may take before the test fails.
const CLIENT_WAIT: Duration = Duration::from_secs(90);

async fn start() -> TestServer {
    TestServer::start_with(|c| {
        c.imap_port = Some(0);
        c.imaps_port = Some(0);
    })
    .await
}

/// Runs a Python script with the IMAP and IMAPS ports as arguments; returns what it printed.
async fn python(s: &TestServer, script: &str) -> String {
    let out = run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(s.addr_of(Service::Imap).port().to_string())
            .arg(s.addr_of(Service::Imaps).port().to_string()),
        CLIENT_WAIT,
    )
    .await;
    assert!(
        out.status.success(),
        "script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_lines(got: &str, want: &str) {
    assert_eq!(got.trim(), want.trim(), "got:\n{got}");
}

const M1: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: first\r\n\
Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nHello Bob.\r\n";
const M2: &[u8] = b"From: carol@example.org\r\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nStra\xc3\x9fe und Gr\xc3\xbc\xc3\x9fe\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_over_every_command() {
    let s = start().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", M1).await;
    deliver(&s, "bob", M2).await;
    let out = python(
        &s,
        r#"
import imaplib, sys
port = int(sys.argv[1])
M = imaplib.IMAP4('127.0.0.1', port)
def r(name, *args):
    try:
        typ, data = getattr(M, name)(*args)
    except M.error as e:
        print(name, 'error', e)
        return
    print(name, typ, [d if isinstance(d, bytes) or d is None else list(d) for d in data])
r('capability')
r('login', 'bob', 'bob-password')
r('noop')
r('namespace')
r('list', '""', '*')
r('lsub', '""', 'INBOX')
r('status', 'INBOX', '(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)')
r('select', 'INBOX')
r('fetch', '1:2', '(UID FLAGS RFC822.SIZE)')
r('fetch', '1', '(RFC822.HEADER)')
r('uid', 'FETCH', '2', '(BODY.PEEK[TEXT])')
r('search', 'UTF-8', 'BODY', '"straße"'.encode())
r('search', None, 'FROM', 'alice')
r('search', None, 'SENTON', '14-Nov-2023')  # message 2 has no Date: its arrival stands in
r('uid', 'SEARCH', 'LARGER', '150')
r('store', '1', '+FLAGS', '(\\Answered)')
r('store', '2', '+FLAGS.SILENT', '(\\Deleted)')
r('copy', '1', 'Archive')
r('append', 'Drafts', '(\\Draft)', '"14-Nov-2023 22:13:20 +0000"', b'Subject: d\r\n\r\ndraft\r\n')
r('create', 'Projects/2024')
r('rename', 'Projects', 'Work')
r('subscribe', 'Work/2024')
r('unsubscribe', 'Work/2024')
r('expunge')
r('check')
r('uid', 'MOVE', '1', 'Work/2024')
r('status', 'Work/2024', '(MESSAGES UIDNEXT)')
r('delete', 'Work/2024')
r('close')
r('select', 'Archive', True)
r('fetch', '1', '(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
r('unselect')
r('enable', 'CONDSTORE')
r('logout')
"#,
    )
    .await;
    let want = format!(
        r#"
capability OK [b'IMAP4rev1 IMAP4rev2 STARTTLS AUTH=PLAIN AUTH=LOGIN SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CONDSTORE QRESYNC SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE UTF8=ACCEPT COMPRESS=DEFLATE APPENDLIMIT=10485760']
login OK [b'[CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CONDSTORE QRESYNC SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE UTF8=ACCEPT COMPRESS=DEFLATE APPENDLIMIT=10485760] Logged in']
noop OK [b'NOOP completed']
namespace OK [b'(("" "/")) NIL NIL']
list OK [b'(\\HasNoChildren \\Archive) "/" "Archive"', b'(\\HasNoChildren \\Drafts) "/" "Drafts"', b'(\\HasNoChildren) "/" "INBOX"', b'(\\HasNoChildren \\Junk) "/" "Junk"', b'(\\HasNoChildren \\Sent) "/" "Sent"', b'(\\HasNoChildren \\Trash) "/" "Trash"']
lsub OK [b'(\\HasNoChildren) "/" "INBOX"']
status OK [b'"INBOX" (MESSAGES 2 UNSEEN 2 UIDNEXT 3 UIDVALIDITY 1 RECENT 2)']
select OK [b'2']
fetch OK [b'1 (UID 1 FLAGS (\\Recent) RFC822.SIZE {m1})', b'2 (UID 2 FLAGS (\\Recent) RFC822.SIZE {m2})']
fetch OK [[b'1 (RFC822.HEADER {{{h1}}}', b'From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: first\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n'], b')']
uid OK [[b'2 (UID 2 BODY[TEXT] {{21}}', b'Stra\xc3\x9fe und Gr\xc3\xbc\xc3\x9fe\r\n'], b')']
search OK [b'2']
search OK [b'1']
search OK [b'1 2']
uid OK [b'1 2']
store OK [b'1 (FLAGS (\\Answered \\Recent))']
store OK [None]
copy OK [b'[COPYUID 6 1 1] COPY completed']
append OK [b'[APPENDUID 3 1] APPEND completed']
create OK [b'CREATE completed']
rename OK [b'RENAME completed']
subscribe OK [b'SUBSCRIBE completed']
unsubscribe OK [b'UNSUBSCRIBE completed']
expunge OK [b'2']
check OK [b'CHECK completed']
uid OK [None]
status OK [b'"Work/2024" (MESSAGES 1 UIDNEXT 2)']
delete OK [b'DELETE completed']
close OK [b'CLOSE completed']
select OK [b'1']
fetch OK [[b'1 (FLAGS (\\Answered \\Recent) BODY[HEADER.FIELDS (SUBJECT)] {{18}}', b'Subject: first\r\n\r\n'], b')']
unselect OK [b'UNSELECT completed']
enable OK [b'ENABLE completed']
logout BYE [b'Logging out']
"#,
        m1 = M1.len(),
        m2 = M2.len(),
        h1 = M1.len() - "Hello Bob.\r\n".len(),
    );
    assert_lines(&out, &want);
    // Stored state: INBOX empty (one expunged, one moved), Archive has the copy, Drafts the append.
    let bob = jmail::accounts::authenticate(s.store.as_ref(), "bob", "bob-password")
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.store
            .snapshot(bob.inbox)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    let archive = s.store.mailbox(bob.id, "Archive").await.unwrap().unwrap();
    let copy = s.store.fetch(archive.id, 1, false).await.unwrap().unwrap();
    assert_eq!(copy, M1);
    let drafts = s.store.mailbox(bob.id, "Drafts").await.unwrap().unwrap();
    assert_eq!(
        s.store.snapshot(drafts.id).await.unwrap().messages,
        vec![(1, flags::DRAFT)]
    );
}

/// imaplib with UTF8=ACCEPT enabled sends names in UTF-8 as bare atoms (which the grammar's 7-bit atoms
/// do not allow; read as quoted strings) and reads them back in UTF-8; a session that did not enable it
/// sees them in modified UTF-7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaplib_with_utf8_accept() {
    let s = start().await;
    bare_user(&s, "bob", "bob-password").await;
    let out = python(
        &s,
        r#"
import imaplib, sys
port = int(sys.argv[1])
M = imaplib.IMAP4('127.0.0.1', port)
M.login('bob', 'bob-password')
print('enable', M.enable('UTF8=ACCEPT'))
print('create', M.create('Grüße/Café'))
print('list', M.list('""', 'Gr*'))
print('select', M.select('Grüße/Café'))
print('status', M.status('Grüße', '(MESSAGES)'))
other = imaplib.IMAP4('127.0.0.1', port)
other.login('bob', 'bob-password')
print('rev1', other.list('""', 'Gr*'))
"#,
    )
    .await;
    assert_lines(
        &out,
        r#"
enable ('OK', [b'ENABLE completed'])
create ('OK', [b'CREATE completed'])
list ('OK', [b'(\\HasChildren) "/" "Gr\xc3\xbc\xc3\x9fe"', b'(\\HasNoChildren) "/" "Gr\xc3\xbc\xc3\x9fe/Caf\xc3\xa9"'])
select ('OK', [b'0'])
status ('OK', [b'"Gr\xc3\xbc\xc3\x9fe" (MESSAGES 0)'])
rev1 ('OK', [b'(\\HasChildren) "/" "Gr&APwA3w-e"', b'(\\HasNoChildren) "/" "Gr&APwA3w-e/Caf&AOk-"'])
"#,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imapclient_over_starttls_and_imaps_with_idle() {
    let s = start().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", M1).await;
    let out = python(
        &s,
        r#"
import imaplib, ssl, sys, threading, time
from imapclient import IMAPClient
port, tls_port = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

c = IMAPClient('127.0.0.1', port=port, ssl=False)
c.starttls(ctx)
print('login', c.login('bob', 'bob-password'))
print('caps', b'STARTTLS' in c.capabilities(), b'IDLE' in c.capabilities())
print('folders', [f[2] for f in c.list_folders()])
print('special', c.find_special_folder(b'\\Sent'))
print('condstore', c.enable('CONDSTORE'))
sel = c.select_folder('INBOX')
print('select', sel[b'EXISTS'], sel[b'UIDVALIDITY'], sel[b'HIGHESTMODSEQ'])
msgs = c.search(['ALL'])
print('search', msgs)
data = c.fetch(msgs, ['ENVELOPE', 'BODY[]', 'FLAGS'])
env = data[1][b'ENVELOPE']
print('envelope', env.subject, env.from_[0].mailbox, env.from_[0].host, env.message_id)
print('body', data[1][b'BODY[]'] == open('/dev/stdin', 'rb').read() if False else len(data[1][b'BODY[]']))
print('flags', data[1][b'FLAGS'])
print('add', c.add_flags(1, [b'$Label1']))
print('keyword search', c.search(['KEYWORD', '$Label1']))
print('since', sorted(c.fetch([1], ['FLAGS'], modifiers=['CHANGEDSINCE 1'])[1].items()))

# IDLE: another client appends; this one hears EXISTS.
c.idle()
def other():
    time.sleep(0.3)
    o = IMAPClient('127.0.0.1', port=tls_port, ssl=True, ssl_context=ctx)
    o.login('bob', 'bob-password')
    o.append('INBOX', b'Subject: pushed\r\n\r\nnew\r\n')
    o.logout()
threading.Thread(target=other).start()
responses = c.idle_check(timeout=10)
print('idle', responses)
print('done', c.idle_done()[1])
print('move', c.move([1], 'Archive'))
print('after', c.search())
print('logout', c.logout())
"#,
    )
    .await;
    let want = format!(
        r#"
login b'[CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CONDSTORE QRESYNC SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE UTF8=ACCEPT COMPRESS=DEFLATE APPENDLIMIT=10485760] Logged in'
caps False True
folders ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']
special Sent
condstore [b'CONDSTORE']
select 1 1 1
search [1]
envelope b'first' b'alice' b'example.org' b'<m1@example.org>'
body {len}
flags (b'\\Seen', b'\\Recent')
add {{1: (b'\\Seen', b'\\Recent', b'$Label1')}}
keyword search [1]
since [(b'FLAGS', (b'\\Seen', b'\\Recent', b'$Label1')), (b'MODSEQ', (3,)), (b'SEQ', 1)]
idle [(2, b'EXISTS'), (2, b'RECENT')]
done []
move None
after [2]
logout b'Logging out'
"#,
        len = M1.len()
    );
    assert_lines(&out, &want);
}

/// Writes mbsync's config for a Maildir at `maildir` and the server's IMAP port.
fn mbsync_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let maildir = dir.join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let config = format!(
        "IMAPAccount jmail\nHost 127.0.0.1\nPort {port}\nUser bob\nPass bob-password\nSSLType None\n\
AuthMechs LOGIN\n\n\
IMAPStore remote\nAccount jmail\n\n\
MaildirStore local\nPath {m}/\nInbox {m}/INBOX\nSubFolders Verbatim\n\n\
Channel sync\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
        m = maildir.display()
    );
    let path = dir.join("mbsyncrc");
    std::fs::write(&path, config).unwrap();
    path
}

async fn mbsync(config: &Path) -> String {
    let out = run_client(
        tokio::process::Command::new("mbsync")
            .arg("-c")
            .arg(config)
            .arg("-a"),
        CLIENT_WAIT,
    )
    .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mbsync failed:\n{text}");
    text
}

/// A message as the server stores it, from mbsync's local copy: mbsync writes LF line ends and adds
/// an `X-TUID` header of its own, and undoes both when it uploads.
fn as_on_server(local: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(local);
    let kept: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("X-TUID: "))
        .collect();
    kept.concat()
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// The messages of a Maildir folder: (flags after `:2,`, bytes as the server keeps them), sorted by
/// bytes.
fn maildir_messages(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name.split(":2,").nth(1).unwrap_or("").to_string();
            out.push((flags, as_on_server(&std::fs::read(&path).unwrap())));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// Sets a system flag on one message, as another session would.
async fn add_flag(s: &TestServer, mailbox: i64, uid: u32, bit: i64) {
    s.store
        .update_flags(
            mailbox,
            &[uid],
            jmail::store::FlagOp::Add,
            jmail::store::Flags::system(bit),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_syncs_both_ways_and_again_after_server_changes() {
    let s = start().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", M1).await;
    deliver(&s, "bob", M2).await;
    let work = tempfile::tempdir().unwrap();
    let config = mbsync_config(work.path(), s.addr_of(Service::Imap).port());
    let inbox_dir = work.path().join("mail/INBOX");

    // 1. Pull: both messages, byte for byte; every mailbox made locally.
    mbsync(&config).await;
    let local = maildir_messages(&inbox_dir);
    assert_eq!(
        local,
        vec![(String::new(), M1.to_vec()), (String::new(), M2.to_vec())]
    );
    assert!(work.path().join("mail/Archive").is_dir());

    // 2. Push: a new local message and a local flag reach the server.
    let new_local = b"Subject: written offline\r\n\r\nfrom the laptop\r\n";
    std::fs::write(
        inbox_dir.join("new/1700000000.1_1.laptop"),
        b"Subject: written offline\n\nfrom the laptop\n",
    )
    .unwrap();
    let m1_path = std::fs::read_dir(inbox_dir.join("cur"))
        .unwrap()
        .chain(std::fs::read_dir(inbox_dir.join("new")).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| as_on_server(&std::fs::read(p).unwrap()) == M1)
        .unwrap();
    let flagged = m1_path.with_file_name(format!(
        "{}:2,FS",
        m1_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .split(":2,")
            .next()
            .unwrap()
    ));
    let flagged = inbox_dir.join("cur").join(flagged.file_name().unwrap());
    std::fs::rename(&m1_path, &flagged).unwrap();
    mbsync(&config).await;
    let bob = jmail::accounts::authenticate(s.store.as_ref(), "bob", "bob-password")
        .await
        .unwrap()
        .unwrap();
    let snapshot = s.store.snapshot(bob.inbox).await.unwrap();
    assert_eq!(snapshot.messages.len(), 3);
    assert_eq!(snapshot.messages[0], (1, flags::FLAGGED | flags::SEEN));
    // What mbsync uploaded: CRLF line ends, and its X-TUID header (which it keeps on the server).
    let pushed = s.store.fetch(bob.inbox, 3, false).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&pushed).contains("\r\nX-TUID: "));
    assert_eq!(as_on_server(&pushed), new_local);

    // 3. Changes on the server: message 2 expunged, message 3 flagged answered, new mail.
    add_flag(&s, bob.inbox, 2, flags::DELETED).await;
    s.store.expunge(bob.inbox, None, true).await.unwrap();
    add_flag(&s, bob.inbox, 3, flags::ANSWERED).await;
    let fresh = b"Subject: while you were away\r\n\r\nnews\r\n";
    deliver(&s, "bob", fresh).await;
    mbsync(&config).await;
    let local = maildir_messages(&inbox_dir);
    assert_eq!(
        local,
        vec![
            ("FS".to_string(), M1.to_vec()),
            (String::new(), fresh.to_vec()),
            ("R".to_string(), new_local.to_vec()),
        ]
    );
    // 4. Nothing left to do: a fourth run changes nothing on either side.
    mbsync(&config).await;
    assert_eq!(maildir_messages(&inbox_dir), local);
    assert_eq!(s.store.snapshot(bob.inbox).await.unwrap().messages.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_over_imap_and_imaps() {
    let s = start().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", M1).await;
    let curl = |args: Vec<String>| async move {
        let out = run_client(
            tokio::process::Command::new("curl")
                .args(["-s", "--max-time", "30", "-u", "bob:bob-password"])
                .args(args),
            CLIENT_WAIT,
        )
        .await;
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let plain = s.addr_of(Service::Imap).port();
    let tls = s.addr_of(Service::Imaps).port();
    let list = curl(vec![format!("imap://127.0.0.1:{plain}/")]).await;
    assert_eq!(
        String::from_utf8(list).unwrap(),
        "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"\r\n\
* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"\r\n\
* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n\
* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"\r\n\
* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n\
* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"\r\n"
    );
    let message = curl(vec![format!("imap://127.0.0.1:{plain}/INBOX;UID=1")]).await;
    assert_eq!(message, M1);
    let over_tls = curl(vec![
        "-k".into(),
        format!("imaps://127.0.0.1:{tls}/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)"),
    ])
    .await;
    assert_eq!(over_tls, b"Subject: first\r\n\r\n");
    let search = curl(vec![
        "-k".into(),
        "--ssl-reqd".into(),
        format!("imap://127.0.0.1:{plain}/INBOX?SUBJECT%20first"),
    ])
    .await;
    assert_eq!(String::from_utf8(search).unwrap(), "* SEARCH 1\r\n");
}

/// neomutt's settings for the test: the server's INBOX over plain IMAP on loopback, no caches, no
/// confirmations, and checks for new mail every second.
fn neomutt_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let config = format!(
        "set folder=\"imap://bob@127.0.0.1:{port}/\"\nset spoolfile=\"+INBOX\"\n\
set imap_user=bob\nset imap_pass=bob-password\n\
set ssl_starttls=no\nset ssl_force_tls=no\nset imap_check_subscribed=no\nset mail_check=1\n\
set timeout=1\nset header_cache=\"\"\nset message_cachedir=\"\"\nset confirmappend=no\n\
set confirmcreate=no\nset delete=yes\nset mark_old=no\nset move=no\nset wait_key=no\n\
set sort=date-sent\nset pager_stop=yes\nset editor=true\nset mailcap_path=/dev/null\n"
    );
    let path = dir.join("neomuttrc");
    std::fs::write(&path, config).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neomutt_reads_flags_and_moves_under_tmux() {
    let s = start().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", M1).await;
    deliver(&s, "bob", b"From: dave@example.org\r\nSubject: keep me\r\nDate: Wed, 15 Nov 2023 10:00:00 +0000\r\n\r\nStays here.\r\n").await;
    let work = tempfile::tempdir().unwrap();
    let config = neomutt_config(work.path(), s.addr_of(Service::Imap).port());
    let home = work.path().to_path_buf();
    let screen_log = tokio::task::spawn_blocking(move || {
        let tmux = crate::tui::Tmux::start(
            "neomutt",
            &format!(
                "env HOME={} TERM=xterm neomutt -n -F {}; echo NEOMUTT-EXIT=$?; sleep 600",
                home.display(),
                config.display()
            ),
        );
        // The index lists both messages.
        tmux.wait_for("keep me");
        let index = tmux.wait_for("first");
        // Read "first" (the older one, at the top): its body shows; back to the index.
        tmux.keys(&["="]);
        tmux.keys(&["Enter"]);
        tmux.wait_for("Hello Bob.");
        tmux.keys(&["q"]);
        tmux.wait_for("keep me");
        // Flag it, and have neomutt write the change to the server.
        tmux.keys(&["=", "F", "$"]);
        std::thread::sleep(Duration::from_millis(1500));
        // Save (move) it to Archive, then sync: it leaves INBOX.
        tmux.keys(&["=", "s"]);
        tmux.wait_for("Save to mailbox");
        tmux.keys(&["C-u", "=Archive", "Enter"]);
        std::thread::sleep(Duration::from_millis(1500));
        tmux.keys(&["$"]);
        std::thread::sleep(Duration::from_millis(1500));
        let after = tmux.screen();
        tmux.keys(&["q"]);
        tmux.wait_for("NEOMUTT-EXIT=0");
        (index, after)
    })
    .await
    .unwrap();
    let (index, after) = screen_log;
    assert!(index.contains("Alice"), "{index}");
    assert!(
        !after.contains("first"),
        "moved away from the index:\n{after}"
    );
    assert!(after.contains("keep me"), "{after}");
    // On the server: INBOX has only "keep me"; Archive has "first", read and flagged, byte for byte.
    let bob = jmail::accounts::authenticate(s.store.as_ref(), "bob", "bob-password")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.store.snapshot(bob.inbox).await.unwrap().messages,
        vec![(2, 0)]
    );
    let archive = s.store.mailbox(bob.id, "Archive").await.unwrap().unwrap();
    let moved = s.store.snapshot(archive.id).await.unwrap().messages;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].1, flags::SEEN | flags::FLAGGED);
    assert_eq!(
        s.store
            .fetch(archive.id, moved[0].0, false)
            .await
            .unwrap()
            .unwrap(),
        M1
    );
}
