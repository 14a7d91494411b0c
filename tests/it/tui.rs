//! `jmail client`, the terminal UI, driven under tmux as a person would: keys in with `send-keys`, the
//! screen read back with `capture-pane`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::{BIN, add_user, as_user, free_port, serve_with};

/// How long the screen may take to show what a step expects before the test fails.
const SCREEN_WAIT: Duration = Duration::from_secs(20);

/// A tmux server of the test's own (its own socket), killed when the test ends however it ends.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in an 80x24 window; `label` keeps this test's tmux server apart from others
    /// running at the same time.
    pub fn start(label: &str, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("jmail-it-{}-{label}", std::process::id()),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "80",
            "-y",
            "24",
            command,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits until the screen shows `needle`; returns the screen.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {needle:?}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn terminal_client_sends_receives_pushed_mail_resizes_reconnects_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "alice", "alice-pw");
    add_user(d, "bob", "bob-pw");
    // A fixed port, so the restarted server is where the client retries.
    let port = free_port().to_string();
    let server = serve_with(d, &["--port", &port]);
    let addr = server.addr.clone();

    let tmux = Tmux::start(
        "client",
        &format!(
            "env JMAIL_PASSWORD=alice-pw JMAIL_KNOWN_SERVERS={} {BIN} client --server {addr} --user alice; echo CLIENT-EXIT=$?; sleep 600",
            d.join("known_servers").display()
        ),
    );
    let screen = tmux.wait_for("Welcome to Jmail");
    assert!(screen.contains("● connected"), "{screen}");
    assert!(screen.contains("1 message, 1 unread"), "{screen}");

    // The original's habit: `(bob) text` on the input line sends to bob.
    tmux.keys(&["(bob) hi", "Enter"]);
    tmux.wait_for("sent to bob");
    let inbox = as_user(d, &addr, "bob", "bob-pw", &["inbox", "--json"]);
    let inbox: serde_json::Value = serde_json::from_slice(&inbox.stdout).unwrap();
    let sent = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["from"] == "alice@localhost")
        .expect("alice's message is in bob's inbox");
    assert_eq!(sent["subject"], "hi");
    let id = sent["id"].to_string();
    let body = as_user(d, &addr, "bob", "bob-pw", &["read", &id]);
    assert!(
        String::from_utf8_lossy(&body.stdout).ends_with("\n\nhi\n"),
        "{body:?}"
    );

    // Bob's reply appears without a key being pressed (pushed by the server).
    let out = as_user(
        d,
        &addr,
        "bob",
        "bob-pw",
        &[
            "send",
            "alice",
            "--subject",
            "Re: hi",
            "--message",
            "hello alice",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let screen = tmux.wait_for("Re: hi");
    assert!(screen.contains("2 messages, 2 unread"), "{screen}");
    let reply_row = screen.lines().find(|l| l.contains("Re: hi")).unwrap();
    assert!(reply_row.contains("● "), "unread marker: {reply_row}");

    // Reading it: the pane shows the text and the marker goes (the server marked it read).
    tmux.keys(&["Up"]);
    let screen = tmux.wait_for("hello alice");
    assert!(screen.contains("2 messages, 1 unread"), "{screen}");

    // Resized, the screen is drawn again at the new size.
    tmux.run(&["resize-window", "-t", "t", "-x", "100", "-y", "30"]);
    let deadline = Instant::now() + SCREEN_WAIT;
    loop {
        let screen = tmux.screen();
        let top = screen.lines().nth(1).unwrap_or("");
        if top.starts_with("┌ Inbox") && top.chars().count() == 100 && top.ends_with('┐') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not redrawn at 100 columns:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A lost server is shown, then the client finds it again.
    drop(server);
    tmux.wait_for("○ offline");
    let mut server = serve_with(d, &["--port", &port]);
    tmux.wait_for("● connected");

    // A graceful restart (the server says BYE SHUTDOWN) is retried the same way.
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(server.child.wait().unwrap().success());
    tmux.wait_for("○ offline");
    let _server = serve_with(d, &["--port", &port]);
    tmux.wait_for("● connected");

    // Esc quits and gives the terminal back.
    tmux.keys(&["Escape"]);
    let screen = tmux.wait_for("CLIENT-EXIT=");
    assert!(screen.contains("CLIENT-EXIT=0"), "{screen}");
    assert!(
        !screen.contains("Inbox"),
        "the screen was restored:\n{screen}"
    );
}
