//! TLS on every listener with real TLS clients (Python's ssl, smtplib, poplib; openssl s_client): STARTTLS
//! and STLS upgrades, implicit-TLS ports, the self-signed certificate verified by its file, STARTTLS
//! command injection, and the rule that passwords need TLS off loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use jmail::server::Service;
use jmail::store::MailStore;

use crate::harness::TestServer;

async fn server() -> TestServer {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.submission_port = Some(0);
        c.pop3_port = Some(0);
        c.submissions_port = Some(0);
        c.pop3s_port = Some(0);
        c.native_tls_port = Some(0);
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    s
}

const CLIENTS: &str = r#"
import json, poplib, smtplib, socket, ssl, sys
ports = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2])   # the server's own certificate, checked for "localhost"
out = {}

# SMTP submission: STARTTLS, then AUTH (now offered), then a message.
s = smtplib.SMTP("localhost", ports["submission"])
s.ehlo("client.test")
out["before_tls"] = sorted(s.esmtp_features)
s.starttls(context=ctx)
out["smtp_tls_version"] = s.sock.version()
s.ehlo("client.test")
out["after_tls"] = sorted(s.esmtp_features)
s.login("alice", "alice-pw")
s.sendmail("alice@localhost", ["bob@localhost"], b"Subject: over STARTTLS\r\n\r\nsecret\r\n")
s.quit()

# Implicit TLS submission (465).
s = smtplib.SMTP_SSL("localhost", ports["submissions"], context=ctx)
s.login("alice", "alice-pw")
s.sendmail("alice@localhost", ["bob@localhost"], b"Subject: over SMTPS\r\n\r\nsecret\r\n")
s.quit()

# POP3: STLS, and POP3S.
p = poplib.POP3("localhost", ports["pop3"])
out["pop3_capa"] = sorted(p.capa())
p.stls(context=ctx)
out["pop3_capa_tls"] = sorted(p.capa())
p.user("bob"); p.pass_("bob-pw")
out["pop3_stat"] = p.stat()
p.quit()
p = poplib.POP3_SSL("localhost", ports["pop3s"], context=ctx)
p.user("bob"); p.pass_("bob-pw")
out["pop3s_stat"] = p.stat()
p.quit()

# STARTTLS command injection: a command pipelined after STARTTLS in clear must never be executed.
raw = socket.create_connection(("localhost", ports["smtp"]))
f = raw.makefile("rb")
f.readline()
raw.sendall(b"EHLO x\r\n")
while f.readline()[3:4] == b"-": pass
raw.sendall(b"STARTTLS\r\nRSET\r\n")
out["starttls_reply"] = f.readline().decode().strip()
tls = ctx.wrap_socket(raw, server_hostname="localhost")
tf = tls.makefile("rb")
tls.sendall(b"NOOP injected?\r\n")
out["first_reply_under_tls"] = tf.readline().decode().strip()

# Native STARTTLS.
raw = socket.create_connection(("localhost", ports["native"]))
assert raw.recv(28) == b"You have connected to Jmail."
f = raw.makefile("rb")
raw.sendall(b"JMAIL 2.0\r\n"); f.readline()
raw.sendall(b"STARTTLS\r\n")
out["native_starttls"] = f.readline().decode().strip()
tls = ctx.wrap_socket(raw, server_hostname="localhost")
tf = tls.makefile("rb")
tls.sendall(b"LOGIN bob bob-pw\r\n")
out["native_login_tls"] = tf.readline().decode().strip()
print(json.dumps(out))
"#;

#[tokio::test]
async fn starttls_stls_and_implicit_tls_with_python_clients() {
    let s = server().await;
    let ports = serde_json::json!({
        "smtp": s.addr_of(Service::Smtp).port(),
        "submission": s.addr_of(Service::Submission).port(),
        "submissions": s.addr_of(Service::Submissions).port(),
        "pop3": s.addr_of(Service::Pop3).port(),
        "pop3s": s.addr_of(Service::Pop3s).port(),
        "native": s.addr.port(),
    });
    let cert = s.dir.path().join("tls").join("cert.pem");
    let out = tokio::process::Command::new("python3")
        .args(["-c", CLIENTS, &ports.to_string(), cert.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // From loopback AUTH is offered in clear too (as Dovecot does for trusted networks); STARTTLS goes
    // once TLS is on.
    assert!(
        out["before_tls"]
            .as_array()
            .unwrap()
            .contains(&"starttls".into())
    );
    assert!(
        !out["after_tls"]
            .as_array()
            .unwrap()
            .contains(&"starttls".into())
    );
    assert!(
        out["after_tls"]
            .as_array()
            .unwrap()
            .contains(&"auth".into())
    );
    assert_eq!(out["smtp_tls_version"], "TLSv1.3");
    assert!(
        out["pop3_capa"]
            .as_array()
            .unwrap()
            .contains(&"STLS".into())
    );
    assert!(
        !out["pop3_capa_tls"]
            .as_array()
            .unwrap()
            .contains(&"STLS".into())
    );
    assert_eq!(out["pop3_stat"][0], 3, "welcome and the two messages");
    assert_eq!(out["pop3s_stat"][0], 3);
    assert_eq!(out["starttls_reply"], "220 2.0.0 Ready to start TLS");
    assert_eq!(
        out["first_reply_under_tls"], "250 2.0.0 OK",
        "the RSET sent in clear was dropped, so the first reply is NOOP's"
    );
    assert_eq!(
        out["native_starttls"],
        "OK STARTTLS begin TLS negotiation now"
    );
    assert_eq!(out["native_login_tls"], "OK LOGIN welcome");

    // The Received headers say the mail came over TLS and authenticated.
    let mut bob = s.client("bob", "bob-pw").await;
    let listing = bob.list(0).await.unwrap();
    for m in &listing.messages[1..] {
        let raw = String::from_utf8(bob.read(m.id).await.unwrap()).unwrap();
        assert!(raw.contains(" with ESMTPSA id "), "{raw}");
    }
}

#[tokio::test]
async fn openssl_s_client_on_the_native_tls_port_sees_the_logged_fingerprint() {
    let s = server().await;
    let addr = s.addr_of(Service::NativeTls).to_string();
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-quiet", "-verify_quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"JMAIL 2.0\r\nLOGIN alice alice-pw\r\nLOGOUT\r\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("You have connected to Jmail.OK JMAIL 2.0 "),
        "{text}"
    );
    assert!(
        text.contains("\r\nOK LOGIN welcome\r\nBYE LOGOUT goodbye\r\n"),
        "{text}"
    );

    // The fingerprint the server reports is the certificate's, as openssl computes it.
    let cert = s.dir.path().join("tls").join("cert.pem");
    let out = tokio::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let tls = jmail::tls::Tls::load(
        jmail::tls::CertSource::new(None, None, s.dir.path()),
        vec!["localhost".into()],
        15,
    )
    .unwrap();
    assert_eq!(
        printed.trim(),
        format!("sha256 Fingerprint={}", tls.fingerprint())
    );
}

/// A session as seen from a non-loopback address (sessions are pure state machines, so no network other
/// than loopback is needed to test what a remote client would get).
fn remote() -> SocketAddr {
    "203.0.113.9:40000".parse().unwrap()
}

#[tokio::test]
async fn passwords_need_tls_off_loopback() {
    let s = server().await;
    let store: Arc<dyn MailStore> = s.store.clone();
    let config = Arc::new(s.config.clone());
    let throttle = jmail::throttle::LoginThrottle::system();

    // Submission: AUTH is not offered in clear and is refused with 538; under TLS it works.
    use jmail::smtp::{Mode, Session as Smtp};
    let mut smtp = Smtp::new(
        store.clone(),
        config.clone(),
        throttle.clone(),
        remote(),
        Mode::Submission,
        false,
    );
    let ehlo = String::from_utf8(smtp.on_line(b"EHLO remote.test").await.reply).unwrap();
    assert!(
        ehlo.contains("250-STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let refused = smtp.on_line(b"AUTH PLAIN AGFsaWNlAGFsaWNlLXB3").await.reply;
    assert_eq!(
        refused,
        b"538 5.7.11 Encryption required for requested authentication mechanism; use STARTTLS\r\n"
    );
    smtp.on_tls_started();
    smtp.on_line(b"EHLO remote.test").await;
    let ok = smtp.on_line(b"AUTH PLAIN AGFsaWNlAGFsaWNlLXB3").await.reply;
    assert_eq!(ok, b"235 2.7.0 Authentication successful\r\n");

    // Native: NO PRIVACY before STARTTLS.
    use jmail_proto::native::{Decoder, Limits};
    let mut native = jmail::native::Session::new(
        store.clone(),
        config.clone(),
        throttle.clone(),
        remote(),
        false,
    );
    let mut decoder = Decoder::new(Limits {
        line_bytes_max: 8192,
        recipients_max: 100,
    });
    let mut say = async |line: &[u8]| {
        let (_, event) = decoder.decode(line);
        String::from_utf8(native.on_event(event.unwrap()).await.reply).unwrap()
    };
    assert!(say(b"JMAIL 2.0\r\n").await.starts_with("OK JMAIL 2.0"));
    assert_eq!(
        say(b"LOGIN alice alice-pw\r\n").await,
        "NO PRIVACY TLS is required to log in from your address; use STARTTLS first\r\n"
    );

    // POP3: USER refused with [AUTH] before STLS.
    use jmail_proto::pop3::Decoder as Pop3Decoder;
    let mut pop3 = jmail::pop3::Session::new(
        store.clone(),
        config.clone(),
        throttle.clone(),
        remote(),
        false,
    );
    let mut d = Pop3Decoder::new();
    let (_, event) = d.decode(b"CAPA\r\n");
    let caps = String::from_utf8(pop3.on_event(event.unwrap()).await.reply).unwrap();
    assert_eq!(
        caps,
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n\
STLS\r\nIMPLEMENTATION Jmail\r\n.\r\n",
        "no USER or PLAIN offered where they would be refused"
    );
    let (_, event) = d.decode(b"USER alice\r\n");
    let reply = pop3.on_event(event.unwrap()).await.reply;
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "-ERR [AUTH] TLS required to log in: use STLS (or POP3S) first\r\n"
    );

    // v1: in clear off loopback refused; through the native TLS port (a TLS wrapper) taken.
    for (tls, want) in [(false, &b"1234"[..]), (true, &b"1969"[..])] {
        let mut v1 = jmail::legacy::LegacySession::new(
            store.clone(),
            config.clone(),
            throttle.clone(),
            remote(),
            tls,
        );
        v1.on_chunk(b"1.0").await;
        v1.on_chunk(b"alice").await;
        let reply = v1.on_chunk(b"alice-pw").await;
        assert_eq!(reply.sends[0], want, "v1 with TLS {tls}");
    }

    // With allow_plaintext_auth the operator accepts the risk.
    let mut open = s.config.clone();
    open.allow_plaintext_auth = true;
    let mut smtp = Smtp::new(
        store,
        Arc::new(open),
        throttle,
        remote(),
        Mode::Submission,
        false,
    );
    smtp.on_line(b"EHLO remote.test").await;
    let ok = smtp.on_line(b"AUTH PLAIN AGFsaWNlAGFsaWNlLXB3").await.reply;
    assert_eq!(ok, b"235 2.7.0 Authentication successful\r\n");
}

const HOLD_TLS: &str = r#"
import hashlib, socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def connect():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
    fp = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest().upper()
    return s, ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))
old, fp = connect()
print(fp, flush=True)
sys.stdin.readline()              # the test reloads the certificate meanwhile
old.recv(28)
old.sendall(b"JMAIL 2.0\r\n")
print(old.recv(100).decode().split("\r\n")[0], flush=True)
print(connect()[1], flush=True)
"#;

/// SIGHUP reloads the certificate: new connections get the new one, open ones carry on.
#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = crate::cli::free_port().to_string();
    let server = crate::cli::serve_with(dir.path(), &["--native-tls-port", &port]);
    let loaded = server.ready.clone();
    let mut child = std::process::Command::new("python3")
        .args(["-c", HOLD_TLS, &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(loaded.contains(&first), "{loaded} names {first}");

    // A new self-signed certificate replaces the old one on reload.
    let tls_dir = dir.path().join("tls");
    std::fs::remove_file(tls_dir.join("cert.pem")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let reloaded = crate::cli::wait_for(&server.log, "TLS certificate reloaded");
    assert!(!reloaded.contains(&first), "{reloaded}");

    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let old_connection = lines.next().unwrap().unwrap();
    assert!(
        old_connection.starts_with("OK JMAIL 2.0 "),
        "{old_connection}"
    );
    let second = lines.next().unwrap().unwrap();
    assert_ne!(second, first);
    assert!(reloaded.contains(&second), "{reloaded} names {second}");
    assert!(child.wait().unwrap().success());
}

/// A server that answers like Jmail but offers no STARTTLS (as a man in the middle who strips the offer
/// would): the client must not send the password when it has a pin for that server.
#[tokio::test]
async fn a_stripped_starttls_offer_does_not_get_the_password() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(b"You have connected to Jmail.")
            .await
            .unwrap();
        let mut heard = Vec::new();
        let mut line = String::new();
        while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
            let reply: &[u8] = match line.split(' ').next().unwrap().trim() {
                "JMAIL" => b"OK JMAIL 2.0 fake\r\n",
                "CAPA" => b"* CAPA VERSION 2.0\r\nOK CAPA\r\n",
                _ => b"OK\r\n",
            };
            heard.push(line.trim_end().to_string());
            let _ = stream.get_mut().write_all(reply).await;
            line.clear();
        }
        heard
    });
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_servers");
    std::fs::write(&known, format!("{addr} AA:BB\n")).unwrap();
    let trust = jmail::client_tls::TrustSettings {
        ca_file: None,
        known_servers: known,
    };
    let refused = jmail::client::Client::connect_secure(&addr, &trust).await;
    let Err(e) = refused else {
        panic!("a pinned server without STARTTLS was accepted")
    };
    assert!(
        e.to_string()
            .contains("refusing to send the password in clear"),
        "{e}"
    );
    let heard = fake.await.unwrap();
    assert!(heard.iter().all(|l| !l.starts_with("LOGIN")), "{heard:?}");
}
