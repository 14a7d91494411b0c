//! HTTP: health, metrics (read by prometheus_client's parser), and client autoconfiguration naming exactly the listeners the server runs, read by
//! Python's XML and plist parsers over HTTPS (the server's self-signed certificate) and plain HTTP on
//! loopback.

use jmail::server::Service;

use crate::harness::{TestServer, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_autoconfiguration_name_the_listeners_this_server_runs() {
    let s = TestServer::start_with(|c| {
        c.https_port = Some(0);
        c.http_port = Some(0);
        c.imap_port = Some(0);
        c.imaps_port = Some(0);
        c.submission_port = Some(0);
        c.submissions_port = Some(0);
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    jmail::accounts::deliver_system(s.store.as_ref(), &s.config, "alice", "ops", "hello", b"hi")
        .await
        .unwrap();
    let port = |service| s.addr_of(service).port().to_string();
    let script = r#"
import sys, ssl, urllib.request, xml.etree.ElementTree as ET, plistlib
https, http, imap, imaps, sub, subs = sys.argv[1:7]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def get(url, data=None):
    r = urllib.request.urlopen(urllib.request.Request(url, data=data), context=ctx if url.startswith("https") else None)
    return r.status, r.headers.get("Content-Type"), r.read()
status, _, body = get(f"https://127.0.0.1:{https}/healthz")
assert (status, body) == (200, b"ok\n"), (status, body)
status, _, body = get(f"http://127.0.0.1:{http}/healthz")
assert (status, body) == (200, b"ok\n"), "plain HTTP serves loopback"
for path in ["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"]:
    status, kind, body = get(f"https://127.0.0.1:{https}{path}?emailaddress=alice@localhost")
    assert status == 200 and kind == "application/xml", (status, kind)
    provider = ET.fromstring(body).find("emailProvider")
    assert provider.get("id") == "localhost" and provider.find("domain").text == "localhost"
    incoming = [(e.get("type"), e.find("port").text, e.find("socketType").text) for e in provider.findall("incomingServer")]
    assert incoming == [("imap", imaps, "SSL"), ("imap", imap, "STARTTLS")], incoming
    outgoing = [(e.get("type"), e.find("port").text, e.find("socketType").text) for e in provider.findall("outgoingServer")]
    assert outgoing == [("smtp", subs, "SSL"), ("smtp", sub, "STARTTLS")], outgoing
    assert all(e.find("username").text == "%EMAILLOCALPART%" for e in provider.iter() if e.tag.endswith("Server"))
request = b'<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@localhost</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>'
status, _, body = get(f"https://127.0.0.1:{https}/autodiscover/autodiscover.xml", request)
ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
protocols = [(p.find("r:Type", ns).text, p.find("r:Port", ns).text, p.find("r:SSL", ns).text, p.find("r:LoginName", ns).text)
             for p in ET.fromstring(body).iter("{%s}Protocol" % ns["r"])]
assert protocols == [("IMAP", imaps, "on", "alice"), ("SMTP", subs, "on", "alice")], protocols
status, kind, body = get(f"https://127.0.0.1:{https}/apple/jmail.mobileconfig?emailaddress=alice@localhost")
assert kind == "application/x-apple-aspen-config", kind
mail = plistlib.loads(body)["PayloadContent"][0]
assert (mail["EmailAccountType"], mail["IncomingMailServerPortNumber"], mail["IncomingMailServerUseSSL"]) == ("EmailTypeIMAP", int(imaps), True), mail
assert (mail["OutgoingMailServerPortNumber"], mail["OutgoingMailServerUseSSL"], mail["IncomingMailServerUsername"]) == (int(subs), True, "alice"), mail
try:
    get(f"https://127.0.0.1:{https}/no/such/page")
    raise SystemExit("a missing page must be 404")
except urllib.error.HTTPError as e:
    assert e.code == 404
# An IMAP login, then the metrics, parsed by Prometheus's own client library.
import imaplib
from prometheus_client.parser import text_string_to_metric_families
m = imaplib.IMAP4("127.0.0.1", int(imap)); m.login("alice", "alice-pw"); m.logout()
status, kind, body = get(f"http://127.0.0.1:{http}/metrics")
assert kind.startswith("text/plain; version=0.0.4"), kind
families = {f.name: f for f in text_string_to_metric_families(body.decode())}
accepted = {s.labels["protocol"]: s.value for s in families["jmail_connections_accepted"].samples}
assert accepted["imap"] >= 1 and accepted["https"] >= 5 and accepted["http"] >= 2, accepted
logins = {s.labels["result"]: s.value for s in families["jmail_logins"].samples}
assert logins["ok"] >= 1, logins
assert families["jmail_connections_open"].type == "gauge"
# The system message went through a delivery, and counted.
delivered = next(s.value for s in families["jmail_delivered"].samples)
assert delivered >= 1, delivered
assert "jmail_push_events" in families and "jmail_store_errors" in families
# Write batches as histograms: the welcome and system messages were committed.
batches = families["jmail_commit_batch_ops"]
assert batches.type == "histogram", batches.type
count = next(s.value for s in batches.samples if s.name == "jmail_commit_batch_ops_count")
assert count >= 1, count
inf = next(s.value for s in families["jmail_commit_seconds"].samples if s.labels.get("le") == "+Inf")
assert inf == next(s.value for s in families["jmail_commit_seconds"].samples if s.name.endswith("_count"))
assert next(s.value for s in families["jmail_queue_depth"].samples) == 0
print("ok")
"#;
    python(
        script,
        &[
            port(Service::Https),
            port(Service::Http),
            port(Service::Imap),
            port(Service::Imaps),
            port(Service::Submission),
            port(Service::Submissions),
        ],
    )
    .await;
    s.stop().await;
}

/// A client that trickles its request header a byte at a time is cut off (idle_secs_unauth), a kept-alive
/// connection serves several requests and then closes when idle, and a trickled body is cut off at the
/// request's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_requests_are_cut_off_and_idle_connections_closed() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.http_port = Some(0);
        c.limits.idle_secs_unauth = 1;
        c.limits.line_secs_max = 1;
        c.limits.write_secs_max = 1;
        c.limits.login_penalty_secs_max = 1;
        c.limits.data_bytes_per_sec_min = 100_000;
    })
    .await;
    let addr = s.addr_of(Service::Http);
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in request {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "cut off at its deadline, not held: {took:?}"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "never answered as whole"
    );

    // Two requests on one connection (kept alive, as JMAP clients expect), then an idle connection
    // is closed after idle_secs_unauth.
    let mut quick = tokio::net::TcpStream::connect(addr).await.unwrap();
    quick
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), quick.read_to_end(&mut reply))
        .await
        .expect("the server closes an idle connection")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
    assert!(reply.ends_with("ok\n"), "{reply}");

    // The largest Content-Length there is: refused at once, the server unharmed (it still answers below).
    let mut huge = tokio::net::TcpStream::connect(addr).await.unwrap();
    huge.write_all(
        b"POST /jmap/api HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut answer = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), huge.read_exact(&mut answer))
        .await
        .expect("answered at once")
        .unwrap();
    // 431 from hyper's parser, or 413 from the route's limit: a refusal either way.
    assert_eq!(
        &answer,
        b"HTTP/1.1 4",
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A stranger's body is not waited for (nor held): refused before a byte of it is read.
    let mut stranger = tokio::net::TcpStream::connect(addr).await.unwrap();
    stranger
        .write_all(b"POST /jmap/api HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(3), stranger.read_exact(&mut answer))
        .await
        .expect("answered before the body")
        .unwrap();
    assert_eq!(
        &answer,
        b"HTTP/1.1 401",
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A route that reads a few KiB refuses a larger Content-Length at once: believed, it held the
    // connection for the time 10 MB take at the slowest rate (45 minutes).
    let mut holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    holder
        .write_all(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(3), holder.read_exact(&mut answer))
        .await
        .expect("answered before the body")
        .unwrap();
    assert_eq!(
        &answer,
        b"HTTP/1.1 413",
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A logged-in client's body trickled slower than data_bytes_per_sec_min allows (once line_secs_max
    // is over) is cut off.
    s.add_user("alice", "alice-pw").await;
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"POST /jmap/api HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\nContent-Length: 100000\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if trickle.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => rest.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a trickled body is not waited for without end: {:?}",
        started.elapsed()
    );
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 408"), "{rest}");
    s.stop().await;
}

/// A client that asks for a large download and never reads it loses the connection once a write has
/// waited write_secs_max: the server does not hold the slot (or the message) for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_never_read_is_cut_off() {
    use base64::Engine;
    use jmail::store::MailStore;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.http_port = Some(0);
        c.limits.write_secs_max = 1;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    raw.resize(9 * 1024 * 1024, b'x');
    let size = raw.len();
    let delivered = s
        .store
        .deliver(&["alice".to_string()], jmail::message::imported(raw), None)
        .await
        .unwrap();
    let inbox = s.store.credentials("alice").await.unwrap().unwrap().inbox;
    let stored = s.store.body_ref(inbox, delivered[0].uid).await.unwrap();
    let blob = format!("b{}", stored.unwrap().blob);
    let credentials = base64::engine::general_purpose::STANDARD.encode("alice:alice-pw");
    let account = s.store.credentials("alice").await.unwrap().unwrap().id;
    // A small receive buffer, so the server's writes back up soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(s.addr_of(Service::Http)).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /jmap/download/a{account}/{blob}/big.eml HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Basic {credentials}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Not read for a while: the server's write waits, then gives up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut got)).await;
    assert!(
        ended.is_ok(),
        "the server closed the connection rather than wait for the reader"
    );
    assert!(
        got.len() < size,
        "cut off before the whole body went: {} of {size} bytes",
        got.len()
    );
    assert!(String::from_utf8_lossy(&got[..64.min(got.len())]).starts_with("HTTP/1.1 200"));
    s.stop().await;
}
