//! Many clients at once: every acknowledged message is stored exactly once, in the right mailbox.

use std::collections::HashMap;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_each_send_and_read() {
    const CLIENTS: usize = 500;
    const USERS: usize = 10;
    // All 500 connect from 127.0.0.1 at once, before any has logged in.
    let s = TestServer::start_with(|c| c.limits.connections_per_new_ip_max = CLIENTS).await;
    for u in 0..USERS {
        s.add_user(&format!("user{u}"), "pw").await;
    }
    let addr = s.addr.to_string();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("user{}", i % USERS);
            let to = format!("user{}", (i + 1) % USERS);
            let mut c = jmail::client::Client::connect(&addr).await.unwrap();
            c.login(&me, "pw").await.unwrap();
            c.send(
                &[to],
                &format!("msg {i}"),
                format!("from client {i}").as_bytes(),
            )
            .await
            .unwrap();
            let listing = c.list(0).await.unwrap();
            let first = listing.messages.first().unwrap().id;
            let raw = c.read(first).await.unwrap();
            assert!(!raw.is_empty());
            c.logout().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Each user received exactly the 50 messages sent to them, plus the welcome message.
    let mut subjects: HashMap<String, usize> = HashMap::new();
    for u in 0..USERS {
        let mut c = s.client(&format!("user{u}"), "pw").await;
        let listing = c.list(0).await.unwrap();
        assert_eq!(listing.messages.len(), CLIENTS / USERS + 1, "user{u}");
        let ids: Vec<u32> = listing.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, (1..=(CLIENTS / USERS + 1) as u32).collect::<Vec<_>>());
        for m in listing
            .messages
            .iter()
            .filter(|m| m.subject.starts_with("msg "))
        {
            let n: usize = m.subject[4..].parse().unwrap();
            assert_eq!((n + 1) % USERS, u, "message {n} landed with user{u}");
            *subjects.entry(m.subject.clone()).or_default() += 1;
        }
    }
    assert_eq!(subjects.len(), CLIENTS);
    assert!(subjects.values().all(|&n| n == 1));
}
