//! A real third-party peer: Debian's Postfix, a private instance of the test's own on another loopback
//! address, receives Jmail's mail (and Python's dkimpy, an independent verifier, passes both of Jmail's
//! DKIM signatures) and sends mail to Jmail (which checks its SPF). `scripts/test` installs both.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jmail::server::Service;
use tempfile::TempDir;

use crate::dns::TestDns;
use crate::federation::{addresses, arrives, auth_results, publish, submit, tune};
use crate::harness::TestServer;

/// A Postfix instance in a temp dir: final destination for `p.test` (Maildir for carol), relaying
/// everything else to Jmail at `relay`, sending from `ip`.
struct Postfix {
    dir: TempDir,
}

impl Postfix {
    fn start(ip: Ipv4Addr, port: u16, relay: SocketAddr) -> Postfix {
        let dir = tempfile::Builder::new()
            .prefix("jmail-postfix")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        for sub in ["queue", "data", "mail"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let master = std::fs::read_to_string("/etc/postfix/master.cf")
            .expect("Debian's postfix is installed (scripts/test installs it)");
        let master: String = master
            .lines()
            .map(|l| {
                if l.starts_with("smtp      inet") {
                    format!("{ip}:{port} inet n - n - - smtpd")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(d.join("master.cf"), master + "\n").unwrap();
        let main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {q}\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             inet_interfaces = all\n\
             inet_protocols = ipv4\n\
             myhostname = mx.p.test\n\
             mydomain = p.test\n\
             mydestination =\n\
             virtual_mailbox_domains = p.test\n\
             virtual_mailbox_base = {mail}\n\
             virtual_mailbox_maps = inline:{{ carol@p.test=carol/ }}\n\
             virtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\n\
             relayhost = [{relay_ip}]:{relay_port}\n\
             smtp_bind_address = {ip}\n\
             smtp_tls_security_level = may\n\
             smtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = {dir}/cert.pem\n\
             smtpd_tls_key_file = {dir}/key.pem\n\
             smtpd_tls_loglevel = 1\n\
             mynetworks = 127.0.0.0/8\n\
             maillog_file_prefixes = /tmp\n\
             maillog_file = {log}\n",
            q = d.join("queue").display(),
            data = d.join("data").display(),
            mail = d.join("mail").display(),
            relay_ip = relay.ip(),
            relay_port = relay.port(),
            log = d.join("postfix.log").display(),
            dir = d.display(),
        );
        std::fs::write(d.join("main.cf"), main).unwrap();
        // A self-signed certificate, so Postfix offers STARTTLS as real servers do.
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=mx.p.test", "-keyout"])
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem")));
        run(Command::new("chown").args(["postfix"]).arg(d.join("data")));
        run(Command::new("chown")
            .args(["65534:65534"])
            .arg(d.join("mail")));
        run(Command::new("postfix")
            .arg("-c")
            .arg(d)
            .arg("set-permissions"));
        run(Command::new("postfix").arg("-c").arg(d).arg("start"));
        Postfix { dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// Carol's delivered messages.
    fn maildir(&self) -> Vec<PathBuf> {
        let new = self.dir.path().join("mail/carol/new");
        std::fs::read_dir(new)
            .map(|it| it.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path())
            .arg("stop")
            .output();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Verifies every DKIM signature of the message at `path` with dkimpy, answering its key lookups from
/// `records` (name → TXT) instead of the system's DNS. Prints one line per signature.
fn dkimpy(path: &Path, records: &[(String, String)]) -> String {
    let script = r#"
import sys, dkim, json
records = json.loads(sys.argv[2])
message = open(sys.argv[1], "rb").read()
def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip("."), "").encode()
d = dkim.DKIM(message)
sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
for i in range(len(sigs)):
    ok = d.verify(idx=i, dnsfunc=dnsfunc)
    print(i, "pass" if ok else "fail", d.signature_fields.get(b"a").decode(), d.signature_fields.get(b"s").decode())
"#;
    let map: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .arg(serde_json::Value::Object(map).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy (pip dkimpy pynacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postfix_takes_jmails_mail_and_sends_it_mail() {
    let dns = TestDns::start().await;
    let (ip_a, _, _, port) = addresses();
    let ip_p = Ipv4Addr::from(u32::from(ip_a) + 2);
    let dir_a = TempDir::new().unwrap();
    publish(&dns, "a.test", ip_a, &dir_a, "p=reject");
    dns.mx("p.test", "mx.p.test");
    dns.a("mx.p.test", ip_p);
    dns.txt("p.test", &format!("v=spf1 ip4:{ip_p} -all"));
    let a = TestServer::start_in(dir_a, |c| tune(c, "a.test", ip_a, port, dns.addr)).await;
    a.add_user("alice", "alice-pw").await;
    let postfix = Postfix::start(ip_p, port, a.addr_of(Service::Smtp));

    // Jmail → Postfix: delivered to carol's Maildir, both signatures pass dkimpy.
    submit(
        &a,
        "alice",
        "alice-pw",
        "alice@a.test",
        &["carol@p.test"],
        "to postfix",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        if let Some(path) = postfix.maildir().into_iter().next() {
            break path;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached Postfix; its log:\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&delivered).unwrap();
    assert!(text.contains("Subject: to postfix"), "{text}");
    let keys = jmail::outbound::dkim::Dkim::new(&a.config.data_dir)
        .public_keys("a.test")
        .unwrap();
    let records = vec![
        (
            "jmail-ed25519._domainkey.a.test".to_string(),
            format!("v=DKIM1; k=ed25519; p={}", keys.ed25519),
        ),
        (
            "jmail-rsa._domainkey.a.test".to_string(),
            format!("v=DKIM1; k=rsa; p={}", keys.rsa),
        ),
    ];
    let verdicts = dkimpy(&delivered, &records);
    assert_eq!(
        verdicts.trim(),
        "0 pass ed25519-sha256 jmail-ed25519\n1 pass rsa-sha256 jmail-rsa",
        "{text}"
    );
    assert!(
        postfix.log().contains("TLS connection established from"),
        "Jmail used STARTTLS: {}",
        postfix.log()
    );

    // Postfix → Jmail: carol writes to alice; Jmail checks p.test's SPF against Postfix's address.
    let out = tokio::process::Command::new("swaks")
        .args([
            "--server",
            &format!("{ip_p}:{port}"),
            "--from",
            "carol@p.test",
        ])
        .args(["--to", "alice@a.test", "--header", "Subject: from postfix"])
        .args(["--body", "hello alice"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = arrives(&a, "alice", "alice-pw", "INBOX", "from postfix").await;
    let results = auth_results(&got);
    assert!(results.contains("spf=pass"), "{results}");
    assert!(results.contains("smtp.mailfrom=carol@p.test"), "{results}");
    assert!(got.contains("Received: from mx.p.test"), "{got}");
    a.stop().await;
}
