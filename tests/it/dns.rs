//! A DNS server of the test's own on loopback (UDP and TCP on one port), answering from a zone the test
//! sets and changes: MX, A, TXT. Names with no records at all get NXDOMAIN, others an empty answer.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

type Zone = HashMap<(String, RecordType), Vec<RData>>;

pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn key(name: &str, kind: RecordType) -> (String, RecordType) {
    (name.trim_end_matches('.').to_ascii_lowercase(), kind)
}

fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let q = request.queries.first()?.clone();
    let name = q.name().to_ascii();
    response.add_query(q.clone());
    match zone.get(&key(&name, q.query_type())) {
        Some(rdatas) => {
            for rdata in rdatas {
                response.add_answer(Record::from_rdata(q.name().clone(), 1, rdata.clone()));
            }
        }
        None => {
            let exists = zone.keys().any(|(n, _)| *n == key(&name, RecordType::A).0);
            if !exists {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            // A SOA in the authority section makes the negative answer cacheable for a second only.
            let soa = SOA::new(
                Name::from_str("ns.test.").unwrap(),
                Name::from_str("hostmaster.test.").unwrap(),
                1,
                60,
                60,
                60,
                1,
            );
            response.authorities.push(Record::from_rdata(
                Name::from_str("test.").unwrap(),
                1,
                RData::SOA(soa),
            ));
        }
    }
    response.to_vec().ok()
}

impl TestDns {
    pub async fn start() -> TestDns {
        // One port for both: a UDP port the system picks may be taken for TCP; then pick again.
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp, addr);
            }
        };
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let z = zone.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                let reply = answer(&z.lock().unwrap(), &buf[..n]);
                if let Some(reply) = reply {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let z = zone.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    return;
                };
                let z = z.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 2];
                        if stream.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        let reply = answer(&z.lock().unwrap(), &query);
                        let Some(reply) = reply else { return };
                        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TestDns {
            addr,
            zone,
            tasks: vec![udp_task, tcp_task],
        }
    }

    fn set(&self, name: &str, kind: RecordType, rdatas: Vec<RData>) {
        self.zone.lock().unwrap().insert(key(name, kind), rdatas);
    }

    pub fn mx(&self, domain: &str, host: &str) {
        let exchange = Name::from_str(&format!("{}.", host.trim_end_matches('.'))).unwrap();
        self.set(
            domain,
            RecordType::MX,
            vec![RData::MX(MX::new(10, exchange))],
        );
    }

    pub fn a(&self, host: &str, ip: Ipv4Addr) {
        self.set(host, RecordType::A, vec![RData::A(A(ip))]);
    }

    /// A TXT record; text longer than 255 bytes is split into strings as DNS requires.
    pub fn txt(&self, name: &str, text: &str) {
        let parts = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.set(name, RecordType::TXT, vec![RData::TXT(TXT::new(parts))]);
    }
}
