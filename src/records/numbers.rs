//! Record numbers per organization (`INC-000123`, `PRB-000123`) without a
//! lock held until commit.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::{AppError, AppResult};

/// Where a record type's numbers come from: on PostgreSQL a function over a
/// sequence per organization (its migration creates it), on SQLite (one
/// writer) a counter row per organization.
pub struct Numbering {
    /// `next_incident_numbers(org, n)`.
    pub function: &'static str,
    /// `incident_counters (organization_id, last_value)`.
    pub counters: &'static str,
}

impl Numbering {
    /// Reserves `n` numbers of an organization, ascending. On PostgreSQL
    /// `nextval` locks nothing until commit, so concurrent writes for one
    /// organization do not queue, and a rolled-back write leaves a gap. On
    /// SQLite the counter row's upsert reserves a consecutive range in the
    /// caller's transaction.
    pub async fn reserve<C: ConnectionTrait>(
        &self,
        db: &C,
        organization_id: i64,
        n: i64,
    ) -> AppResult<Vec<i64>> {
        let backend = db.get_database_backend();
        if backend == DbBackend::Postgres {
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("SELECT n FROM {}($1, $2) AS n", self.function),
                    [
                        organization_id.into(),
                        i32::try_from(n).unwrap_or(i32::MAX).into(),
                    ],
                ))
                .await?;
            let mut numbers = rows
                .iter()
                .map(|r| r.try_get::<i64>("", "n"))
                .collect::<Result<Vec<_>, _>>()?;
            numbers.sort_unstable();
            if numbers.len() as i64 != n {
                return Err(AppError::internal(std::io::Error::other(
                    "the number sequence answered too few numbers",
                )));
            }
            return Ok(numbers);
        }
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO {t} (organization_id, last_value) VALUES (?1, ?2) \
                     ON CONFLICT (organization_id) DO UPDATE SET last_value = {t}.last_value + ?2 \
                     RETURNING last_value",
                    t = self.counters
                ),
                [organization_id.into(), n.into()],
            ))
            .await?
            .ok_or_else(|| {
                AppError::internal(std::io::Error::other("counter upsert returned no row"))
            })?;
        let last: i64 = row.try_get("", "last_value")?;
        Ok((last - n + 1..=last).collect())
    }
}
