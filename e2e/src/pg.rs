//! A throwaway PostgreSQL database on the local server (127.0.0.1:5432,
//! user `postgres`, trust), created and dropped with `psql`. PostgreSQL is
//! a required peer: if it is not there, creating the database fails loudly.

use std::process::{Command, Output};

/// A fresh database, dropped (with its connections) on drop.
#[derive(Debug)]
pub struct PgDatabase {
    name: String,
}

fn psql(sql: &str) -> Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is required for the PostgreSQL scenarios (scripts/setup installs it)")
}

impl PgDatabase {
    /// Creates `<prefix>_<pid>_<nanos>`.
    pub fn create(prefix: &str) -> PgDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        let out = psql(&format!("CREATE DATABASE \"{name}\""));
        assert!(
            out.status.success(),
            "PostgreSQL must be reachable on 127.0.0.1:5432 (user postgres): {out:?}"
        );
        PgDatabase { name }
    }

    /// Its URL, for `CLOUD_DATABASE__URL`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}
