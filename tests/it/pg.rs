//! The PostgreSQL server the tests use: `scripts/test` starts a throwaway cluster and names it in
//! `JMAIL_TEST_POSTGRES`; each test gets a database of its own. Without it (a bare `cargo test`), the
//! PostgreSQL runs of the tests are skipped, and say so.

/// A new empty database's URL, or `None` when no test server is given.
pub async fn fresh_database() -> Option<String> {
    let Ok(base) = std::env::var("JMAIL_TEST_POSTGRES") else {
        eprintln!(
            "JMAIL_TEST_POSTGRES is not set: skipping the PostgreSQL run (scripts/test sets it)"
        );
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server named by JMAIL_TEST_POSTGRES");
    tokio::spawn(connection);
    let name = format!("t{:016x}", rand::random::<u64>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (server, _) = base.rsplit_once('/').expect("a URL with a database name");
    Some(format!("{server}/{name}"))
}

/// The file in a test's data dir that names its PostgreSQL database (see `store::backends`).
pub const URL_FILE: &str = "postgres-url";

/// Runs one statement on the database and returns the first column of its one row (a count).
pub async fn count(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}
