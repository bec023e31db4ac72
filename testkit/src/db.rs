//! A fresh Postgres database per test, dropped afterwards.

use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server-level URL tests create databases through: `$ONHAND_TEST_DATABASE_URL`,
/// else `$DATABASE_URL`, else the local trust-auth server `scripts/setup` ensures.
pub fn admin_database_url() -> String {
    ["ONHAND_TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_string())
}

/// A uniquely named database (`onhand_t_<uuid>`) with a pool on it. Dropped (with
/// `WITH (FORCE)`, best effort) when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    admin_url: String,
    url: String,
    pool: PgPool,
}

impl TestDb {
    /// Creates the database and connects a pool (max 20 connections). Panics on failure.
    pub async fn create() -> TestDb {
        let admin_url = admin_database_url();
        let name = format!("onhand_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("connect to Postgres at {admin_url} (run `scripts/setup`?): {e}")
        });
        sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        if let Err(e) = admin.close().await {
            eprintln!("testkit: closing admin connection: {e}");
        }
        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect pool to {url}: {e}"));
        TestDb {
            name,
            admin_url,
            url,
            pool,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection URL of this database (same server and credentials as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop can run inside a runtime (where blocking on it is not allowed), so the
        // cleanup gets its own thread and a small runtime of its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("testkit: runtime for dropping database {name}: {e}");
                    return;
                }
            };
            runtime.block_on(async {
                let result = async {
                    let mut admin = PgConnection::connect(&admin_url).await?;
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                }
                .await;
                if let Err(e) = result {
                    eprintln!("testkit: dropping test database {name}: {e}");
                }
            });
        });
        if cleanup.join().is_err() {
            eprintln!(
                "testkit: the thread dropping test database {} panicked",
                self.name
            );
        }
    }
}

/// `url` with its database path replaced by `database` (query string kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    match query {
        Some(query) => format!("{}/{database}?{query}", &base[..path_start]),
        None => format!("{}/{database}", &base[..path_start]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_keeping_the_rest() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(with_database("postgres://h?a=b", "x"), "postgres://h/x?a=b");
    }

    #[tokio::test]
    async fn creates_a_usable_database_and_drops_it() {
        let db = TestDb::create().await;
        let name = db.name().to_string();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(db.pool())
            .await
            .expect("query the test database");
        assert_eq!(one, 1);
        drop(db);

        let mut admin = PgConnection::connect(&admin_database_url())
            .await
            .expect("admin connection");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("query pg_database");
        assert_eq!(left, 0, "database {name} should be dropped");
    }
}
