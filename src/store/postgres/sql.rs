//! What every query of the PostgreSQL backend goes through: the transaction an op runs in, statements
//! prepared once per connection, and the mapping of database errors to [`StoreError`].

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::store::{MailboxId, ModelLimits, StoreError, StoreResult, UserId};

/// Query parameters.
pub type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// A database error as the store reports it: a deadlock or serialization failure is a
/// [`StoreError::Conflict`] (the op is retried), anything else a backend failure (a lost connection,
/// a full disk: a temporary failure for the client).
pub fn db(e: tokio_postgres::Error) -> StoreError {
    crate::metrics::METRICS.store_error();
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::Backend(match e.as_db_error() {
            Some(d) => format!("{}: {}", d.code().code(), d.message()),
            None => e.to_string(),
        }),
    }
}

/// What an op sees while it runs: its transaction, the model's limits, and the mailboxes whose modseq it
/// moved (their accounts' feeds hear of it once it has committed).
pub struct Ctx<'a> {
    pub tx: On<'a>,
    pub limits: &'a ModelLimits,
    pub touched: Vec<(UserId, MailboxId, u64)>,
}

/// What an op's statements run on: its transaction, or (a read of one statement) the connection
/// itself, which spares the two round trips of BEGIN and COMMIT.
#[derive(Clone, Copy)]
pub enum On<'a> {
    Tx(&'a Transaction<'a>),
    Client(&'a deadpool_postgres::Client),
}

impl On<'_> {
    async fn prepare_cached(
        &self,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        match self {
            On::Tx(tx) => tx.prepare_cached(sql).await,
            On::Client(c) => c.prepare_cached(sql).await,
        }
    }

    async fn query(
        &self,
        s: &tokio_postgres::Statement,
        p: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self {
            On::Tx(tx) => tx.query(s, p).await,
            On::Client(c) => c.query(s, p).await,
        }
    }

    async fn query_one(
        &self,
        s: &tokio_postgres::Statement,
        p: Params<'_>,
    ) -> Result<Row, tokio_postgres::Error> {
        match self {
            On::Tx(tx) => tx.query_one(s, p).await,
            On::Client(c) => c.query_one(s, p).await,
        }
    }

    async fn query_opt(
        &self,
        s: &tokio_postgres::Statement,
        p: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        match self {
            On::Tx(tx) => tx.query_opt(s, p).await,
            On::Client(c) => c.query_opt(s, p).await,
        }
    }

    async fn execute(
        &self,
        s: &tokio_postgres::Statement,
        p: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        match self {
            On::Tx(tx) => tx.execute(s, p).await,
            On::Client(c) => c.execute(s, p).await,
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn new(tx: &'a Transaction<'a>, limits: &'a ModelLimits) -> Ctx<'a> {
        Ctx {
            tx: On::Tx(tx),
            limits,
            touched: Vec::new(),
        }
    }

    /// For a read of one statement: straight on the connection, without a transaction.
    pub fn on_client(client: &'a deadpool_postgres::Client, limits: &'a ModelLimits) -> Ctx<'a> {
        Ctx {
            tx: On::Client(client),
            limits,
            touched: Vec::new(),
        }
    }

    /// Records that `mailbox` of `user` moved to `modseq`, for the account's feed.
    pub fn touch(&mut self, user: UserId, mailbox: MailboxId, modseq: u64) {
        self.touched.push((user, mailbox, modseq));
    }

    async fn prepared(&self, sql: &str) -> StoreResult<tokio_postgres::Statement> {
        self.tx.prepare_cached(sql).await.map_err(db)
    }

    /// Exactly one row.
    pub async fn one(&self, sql: &str, params: Params<'_>) -> StoreResult<Row> {
        let stmt = self.prepared(sql).await?;
        self.tx.query_one(&stmt, params).await.map_err(db)
    }

    /// At most one row.
    pub async fn opt(&self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let stmt = self.prepared(sql).await?;
        self.tx.query_opt(&stmt, params).await.map_err(db)
    }

    pub async fn all(&self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let stmt = self.prepared(sql).await?;
        self.tx.query(&stmt, params).await.map_err(db)
    }

    /// Rows changed.
    pub async fn exec(&self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let stmt = self.prepared(sql).await?;
        self.tx.execute(&stmt, params).await.map_err(db)
    }
}

/// A stored BIGINT as a UID, modseq or count (never negative in a consistent store; a negative one
/// reads as 0 rather than wrapping).
pub fn u32_of(row: &Row, i: usize) -> u32 {
    row.get::<_, i64>(i).clamp(0, u32::MAX as i64) as u32
}

pub fn u64_of(row: &Row, i: usize) -> u64 {
    row.get::<_, i64>(i).max(0) as u64
}

/// A UID, modseq or size as a BIGINT parameter.
pub fn big(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}
