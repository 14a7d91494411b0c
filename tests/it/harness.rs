//! Starts a real server on 127.0.0.1:0 with a temporary data dir, and speaks to it over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jmail::client::Client;
use jmail::config::Config;
use jmail::server::{RunningServer, Service};
use jmail::store::sqlite::SqliteStore;
use jmail::throttle::LoginThrottle;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a test waits for any one reply before failing.
pub const REPLY_WAIT: Duration = Duration::from_secs(20);

pub struct TestServer {
    pub addr: SocketAddr,
    /// Every listener (native, SMTP, ...) and where it is bound.
    pub listeners: Vec<(Service, SocketAddr)>,
    pub dir: TempDir,
    pub config: Config,
    pub store: Arc<SqliteStore>,
    server: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), tune).await
    }

    /// Starts with a POP3 listener too, on a free port (see [`TestServer::pop3_addr`]).
    pub async fn start_pop3() -> Self {
        Self::start_with(|c| c.pop3_port = Some(0)).await
    }

    /// Where the POP3 listener is bound.
    pub fn pop3_addr(&self) -> SocketAddr {
        let server = self.server.as_ref().expect("server running");
        server
            .listeners
            .iter()
            .find(|(service, _)| *service == Service::Pop3)
            .map(|(_, addr)| *addr)
            .expect("started with a POP3 listener")
    }

    /// Starts on an existing data dir (for restarts).
    pub async fn start_in(dir: TempDir, tune: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_throttle(dir, LoginThrottle::system(), tune).await
    }

    /// Starts with a login throttle of the test's own (on a manual clock).
    pub async fn start_with_throttle(
        dir: TempDir,
        throttle: Arc<LoginThrottle>,
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::for_data_dir(dir.path());
        tune(&mut config);
        let limits = jmail::store::ModelLimits::from(&config.limits);
        let store = Arc::new(SqliteStore::open_with(dir.path(), limits).unwrap());
        let server = jmail::server::start(config.clone(), store.clone(), throttle)
            .await
            .unwrap();
        TestServer {
            addr: server.native_addr,
            listeners: server.listeners.clone(),
            dir,
            config,
            store,
            server: Some(server),
        }
    }

    /// Where `service` listens; the test must have turned it on.
    pub fn addr_of(&self, service: Service) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{service:?} is not listening"))
    }

    pub async fn add_user(&self, name: &str, password: &str) {
        jmail::accounts::add_user(self.store.as_ref(), &self.config, name, password)
            .await
            .unwrap();
    }

    /// Every account's name, straight from the store.
    pub async fn user_names(&self) -> Vec<String> {
        let users = jmail::store::AccountStore::list_users(self.store.as_ref())
            .await
            .unwrap();
        users.into_iter().map(|u| u.name).collect()
    }

    /// Shuts down gracefully and hands back the data dir.
    pub async fn stop(mut self) -> TempDir {
        self.server.take().unwrap().shutdown().await;
        self.dir
    }

    pub async fn client(&self, user: &str, password: &str) -> Client {
        let mut c = Client::connect(&self.addr.to_string()).await.unwrap();
        c.login(user, password).await.unwrap();
        c
    }

    /// A raw connection that has read the greeting.
    pub async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    /// A raw connection past the handshake and logged in.
    pub async fn raw_login(&self, user: &str, password: &str) -> Raw {
        let mut r = self.raw().await;
        r.send(b"JMAIL 2.0\r\n").await;
        r.expect_prefix("OK JMAIL 2.0 ").await;
        r.send(format!("LOGIN {user} {password}\r\n").as_bytes())
            .await;
        r.expect("OK LOGIN welcome").await;
        r
    }
}

/// A plain TCP connection with line helpers that fail the test instead of hanging.
pub struct Raw {
    pub stream: BufReader<TcpStream>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Self::over(TcpStream::connect(addr).await.unwrap()).await
    }

    /// A connection to a line protocol (SMTP, POP3): nothing read yet.
    pub async fn plain(addr: SocketAddr) -> Raw {
        Raw {
            stream: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    /// Reads the greeting on an already connected stream.
    pub async fn over(stream: TcpStream) -> Raw {
        let mut stream = BufReader::new(stream);
        let mut greeting = [0u8; 28];
        tokio::time::timeout(REPLY_WAIT, stream.read_exact(&mut greeting))
            .await
            .expect("greeting in time")
            .unwrap();
        assert_eq!(&greeting, b"You have connected to Jmail.");
        Raw { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// The next line without its CRLF.
    pub async fn line(&mut self) -> String {
        let mut raw = Vec::new();
        let n = tokio::time::timeout(REPLY_WAIT, self.stream.read_until(b'\n', &mut raw))
            .await
            .expect("reply in time")
            .unwrap();
        assert!(n > 0, "connection closed while a line was expected");
        let text = String::from_utf8(raw).unwrap();
        assert!(text.ends_with("\r\n"), "line {text:?} does not end in CRLF");
        text.trim_end_matches("\r\n").to_string()
    }

    pub async fn expect(&mut self, want: &str) {
        assert_eq!(self.line().await, want);
    }

    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let line = self.line().await;
        assert!(
            line.starts_with(prefix),
            "{line:?} does not start with {prefix:?}"
        );
        line
    }

    /// Reads exactly `n` bytes.
    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(REPLY_WAIT, self.stream.read_exact(&mut buf))
            .await
            .expect("bytes in time")
            .unwrap();
        buf
    }

    /// True when the server closes the connection (after any remaining bytes, which are returned). A reset
    /// counts as closed: a server closing with unread input in its buffer resets the connection.
    pub async fn closed(&mut self) -> (bool, Vec<u8>) {
        let mut rest = Vec::new();
        let r = tokio::time::timeout(REPLY_WAIT, self.stream.read_to_end(&mut rest)).await;
        (r.is_ok(), rest)
    }
}

/// Connects to `addr` from the loopback address `source` (another "IP" for per-IP limits).
pub async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Runs a client program to its end (killed if the test gives up first) and returns what it did; fails the
/// test if it takes longer than `wait`.
pub async fn run_client(
    command: &mut tokio::process::Command,
    wait: Duration,
) -> std::process::Output {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    tokio::time::timeout(wait, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish in time"))
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"))
}

/// Runs `python3 -c script args…`, failing the test with everything it printed unless it succeeds; its
/// standard output.
pub async fn python(script: &str, args: &[String]) -> String {
    let out = tokio::process::Command::new("python3")
        .args(["-c", script])
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
