//! Column and constraint shapes every migration uses, so tables stay alike.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Columns every mutable record carries: `version`, `created_at`, `updated_at`.
pub fn stamps(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(integer("version").default(1))
        .col(timestamp_with_time_zone("created_at"))
        .col(timestamp_with_time_zone("updated_at"))
}

/// A foreign key from `from_table.col` to `to_table.id`; referenced rows cannot be deleted.
pub fn fk(
    from_table: &'static str,
    col: &'static str,
    to_table: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, col)
        .to(to_table, "id")
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

/// An index on `cols` of `table`, unique when asked.
pub fn index(name: &str, table: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table.to_owned());
    for c in cols {
        i.col(String::from(*c));
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}
