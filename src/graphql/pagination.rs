//! The one pagination helper: Relay connections over keyset cursors. A cursor
//! holds the sort key and the row id of an edge, so pages stay stable while
//! rows are inserted; `totalCount` is counted only when asked for.

use async_graphql::{
    Object, OutputType,
    connection::{Connection, Edge},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, IdenStatic, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value,
};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

/// Standard Relay arguments.
#[derive(Debug, Default, Clone)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl PageArgs {
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Self {
        Self {
            first,
            after,
            last,
            before,
        }
    }
}

pub const DEFAULT_PAGE_SIZE: usize = 20;

/// The value of the sort column in a cursor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum SortValue {
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "s")]
    Str(String),
    #[serde(rename = "t")]
    Time(DateTime<Utc>),
}

impl From<SortValue> for Value {
    fn from(v: SortValue) -> Self {
        match v {
            SortValue::Int(i) => i.into(),
            SortValue::Str(s) => s.into(),
            SortValue::Time(t) => t.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The sort column: a cursor of another order is refused, not compared.
    c: String,
    k: SortValue,
    id: i64,
}

fn encode_cursor(c: &str, k: SortValue, id: i64) -> String {
    let cursor = Cursor {
        c: c.to_owned(),
        k,
        id,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(field: &str, text: &str, column: &str) -> AppResult<Cursor> {
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .ok()
        .and_then(|raw| serde_json::from_slice::<Cursor>(&raw).ok())
        .filter(|c| c.c == column)
        .ok_or_else(|| {
            AppError::invalid_field(field, format!("{field} is not a cursor from this list"))
        })
}

/// How a list is ordered: one sort column (which may be the id) then the id.
pub struct Keyset<E: EntityTrait> {
    pub column: E::Column,
    pub id: E::Column,
    pub descending: bool,
    /// The sort column's value of a row; must match what the database compares.
    pub key: fn(&E::Model) -> SortValue,
    pub id_of: fn(&E::Model) -> i64,
}

impl<E: EntityTrait> Keyset<E>
where
    E::Model: crate::records::Identified,
{
    /// Ordered by `column` (`key` reads its value from a row), then by id.
    pub fn by(column: E::Column, key: fn(&E::Model) -> SortValue, descending: bool) -> Self {
        Self {
            column,
            id: crate::records::id_column::<E>(),
            descending,
            key,
            id_of: <E::Model as crate::records::Identified>::row_id,
        }
    }

    /// Ordered by id alone.
    pub fn by_id(descending: bool) -> Self {
        fn id_key<M: crate::records::Identified>(m: &M) -> SortValue {
            SortValue::Int(m.row_id())
        }
        Self::by(
            crate::records::id_column::<E>(),
            id_key::<E::Model>,
            descending,
        )
    }
}

/// Extra fields of every connection.
pub struct ConnectionFields {
    count: Box<dyn Fn() -> BoxFuture<'static, Result<u64, DbErr>> + Send + Sync>,
}

#[Object]
impl ConnectionFields {
    /// How many records match the filter, across all pages.
    async fn total_count(&self) -> async_graphql::Result<u64> {
        Ok((self.count)().await.map_err(AppError::from)?)
    }
}

pub type Page<N> = Connection<String, N, ConnectionFields>;

fn check_size(field: &str, n: Option<i32>, max: usize) -> AppResult<Option<usize>> {
    match n {
        None => Ok(None),
        Some(n) if n >= 0 && n as usize <= max => Ok(Some(n as usize)),
        Some(_) => Err(AppError::invalid_field(
            field,
            format!("{field} must be between 0 and {max}"),
        )),
    }
}

/// Runs `query` as one page of a connection.
pub async fn paginate<E, N>(
    db: &DatabaseConnection,
    query: Select<E>,
    keyset: Keyset<E>,
    args: PageArgs,
    max_page_size: usize,
    to_node: impl Fn(E::Model) -> N,
) -> AppResult<Page<N>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    E::Column: Send + Sync,
    N: OutputType,
{
    let first = check_size("first", args.first, max_page_size)?;
    let last = check_size("last", args.last, max_page_size)?;
    if first.is_some() && last.is_some() {
        return Err(AppError::validation("pass either first or last, not both"));
    }
    let column_name = keyset.column.as_str();
    let after = args
        .after
        .as_deref()
        .map(|c| decode_cursor("after", c, column_name))
        .transpose()?;
    let before = args
        .before
        .as_deref()
        .map(|c| decode_cursor("before", c, column_name))
        .transpose()?;
    let backward = last.is_some() || (before.is_some() && first.is_none());
    let limit = first
        .or(last)
        .unwrap_or(DEFAULT_PAGE_SIZE.min(max_page_size));

    let count_db = db.clone();
    let count_query = query.clone();
    let fields = ConnectionFields {
        count: Box::new(move || {
            let (db, q) = (count_db.clone(), count_query.clone());
            Box::pin(async move { q.count(&db).await })
        }),
    };

    let mut q = query;
    let same_col = keyset.column.as_column_ref() == keyset.id.as_column_ref();
    let beyond = |c: Cursor, forward: bool| -> Condition {
        // forward = rows after the cursor in the list's own order.
        let greater = forward != keyset.descending;
        let (cmp_col, cmp_id) = if greater {
            (
                keyset.column.gt(Value::from(c.k.clone())),
                keyset.id.gt(c.id),
            )
        } else {
            (
                keyset.column.lt(Value::from(c.k.clone())),
                keyset.id.lt(c.id),
            )
        };
        if same_col {
            Condition::all().add(cmp_id)
        } else {
            Condition::any().add(cmp_col).add(
                Condition::all()
                    .add(keyset.column.eq(Value::from(c.k)))
                    .add(cmp_id),
            )
        }
    };
    let had_after = after.is_some();
    let had_before = before.is_some();
    if let Some(c) = after {
        q = q.filter(beyond(c, true));
    }
    if let Some(c) = before {
        q = q.filter(beyond(c, false));
    }
    let ascending = keyset.descending == backward;
    let order = if ascending { Order::Asc } else { Order::Desc };
    if !same_col {
        q = q.order_by(keyset.column, order.clone());
    }
    q = q.order_by(keyset.id, order);
    let mut rows = q.limit(limit as u64 + 1).all(db).await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    if backward {
        rows.reverse();
    }
    let (has_previous, has_next) = if backward {
        (has_more, had_before)
    } else {
        (had_after, has_more)
    };
    let mut connection = Connection::with_additional_fields(has_previous, has_next, fields);
    connection.edges.extend(rows.into_iter().map(|row| {
        let cursor = encode_cursor(column_name, (keyset.key)(&row), (keyset.id_of)(&row));
        Edge::new(cursor, to_node(row))
    }));
    Ok(connection)
}

/// [`paginate`] for a resolver: the schema's database and page-size limit.
pub async fn page<E, N>(
    ctx: &async_graphql::Context<'_>,
    query: Select<E>,
    keyset: Keyset<E>,
    args: PageArgs,
    to_node: impl Fn(E::Model) -> N,
) -> async_graphql::Result<Page<N>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    E::Column: Send + Sync,
    N: OutputType,
{
    use super::context::ContextExt;
    let app = ctx.app();
    Ok(paginate(
        &app.store.db,
        query,
        keyset,
        args,
        app.max_page_size,
        to_node,
    )
    .await?)
}
