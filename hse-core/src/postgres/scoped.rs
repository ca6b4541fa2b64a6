//! Scoped reads shared by every entity: one row, a page of rows, a delete.
//!
//! Each entity names the SQL expressions its [`Resource`](crate::Resource)
//! is built from (its [`Placement`]); [`Placement::push_filter`] turns a
//! [`Scope`] into the same test as [`Scope::contains`], in SQL, so a row
//! outside the scope is never read and answers `NotFound` like a missing one.

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::tx::scoped_tx;
use super::violation::on_delete;
use crate::error::{CoreError, Result};
use crate::principal::Scope;
use crate::store::{Listing, Page};

/// Where an entity's establishment comes from, if it has one.
#[derive(Clone, Copy, Debug)]
pub(super) enum EstablishmentColumn {
    /// The entity does not live in an establishment.
    None,
    /// It always does (this column).
    Required(&'static str),
    /// It may (this nullable column).
    Optional(&'static str),
}

/// The SQL expressions of an entity's resource.
#[derive(Clone, Copy, Debug)]
pub(super) struct Placement {
    /// The partner company: the row is a partner's if any of these is it.
    pub(super) partner: &'static [&'static str],
    /// The organization, if the entity can have one.
    pub(super) organization: Option<&'static str>,
    /// The establishment.
    pub(super) establishment: EstablishmentColumn,
}

impl Placement {
    /// Appends a condition true exactly for rows whose resource `scope`
    /// contains.
    pub(super) fn push_filter(&self, qb: &mut QueryBuilder<'_, Postgres>, scope: &Scope) {
        match scope {
            Scope::Platform => {
                qb.push("TRUE");
            }
            Scope::Partner { partner_company_id } => {
                qb.push("(");
                for (i, column) in self.partner.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push(*column).push(" = ").push_bind(partner_company_id.0);
                }
                qb.push(")");
            }
            Scope::Organization {
                organization_id,
                establishments,
            } => {
                let Some(column) = self.organization else {
                    qb.push("FALSE");
                    return;
                };
                qb.push("(")
                    .push(column)
                    .push(" = ")
                    .push_bind(organization_id.0);
                let ids: Vec<Uuid> = establishments.iter().map(|e| e.0).collect();
                match self.establishment {
                    EstablishmentColumn::None => {}
                    EstablishmentColumn::Required(e) => {
                        qb.push(" AND ")
                            .push(e)
                            .push(" = ANY(")
                            .push_bind(ids)
                            .push(")");
                    }
                    EstablishmentColumn::Optional(e) => {
                        qb.push(" AND (").push(e).push(" IS NULL OR ");
                        qb.push(e).push(" = ANY(").push_bind(ids).push("))");
                    }
                }
                qb.push(")");
            }
            Scope::Nothing => {
                qb.push("FALSE");
            }
        }
    }
}

/// How one entity is read and deleted.
#[derive(Clone, Copy, Debug)]
pub(super) struct Table {
    /// The entity's name in errors (`NotFound { entity }`).
    pub(super) entity: &'static str,
    /// The alias of the entity's own table in `select`.
    pub(super) alias: &'static str,
    /// `SELECT <columns> FROM <table> <alias> [JOIN ...]`, no `WHERE`.
    pub(super) select: &'static str,
    /// Rows visible whatever the scope (e.g. system roles), if any.
    pub(super) always_visible: Option<&'static str>,
    /// Where its resource comes from.
    pub(super) placement: Placement,
    /// `DELETE FROM <table> WHERE id = $1`.
    pub(super) delete: &'static str,
}

impl Table {
    /// `select` filtered to `scope`, ready for more `AND` conditions.
    fn select_in(&self, scope: &Scope) -> QueryBuilder<'static, Postgres> {
        let mut qb = QueryBuilder::new(self.select);
        qb.push(" WHERE (");
        if let Some(visible) = self.always_visible {
            qb.push(visible).push(" OR ");
        }
        self.placement.push_filter(&mut qb, scope);
        qb.push(")");
        qb
    }
}

/// A row type of one entity.
pub(super) trait Record: for<'r> FromRow<'r, PgRow> + Send + Unpin {
    /// The model it maps to.
    type Model;
    /// How the entity is read.
    const TABLE: Table;
    /// The row's id (the pagination cursor).
    fn id(&self) -> Uuid;
    /// The model, checking stored values.
    ///
    /// # Errors
    /// [`CoreError::Storage`] if a stored value no longer parses.
    fn into_model(self) -> Result<Self::Model>;
}

/// Which row lock a read takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lock {
    /// None: a plain read.
    None,
    /// Before an update that changes no key: lets foreign-key checks of
    /// children go on meanwhile.
    Update,
    /// Before a delete.
    Delete,
}

/// The row of `id` if it is in `scope`, else `NotFound`.
pub(super) async fn fetch<'c, R: Record>(
    exec: impl PgExecutor<'c>,
    scope: &Scope,
    id: Uuid,
    lock: Lock,
) -> Result<R> {
    let table = R::TABLE;
    let mut qb = table.select_in(scope);
    qb.push(" AND ")
        .push(table.alias)
        .push(".id = ")
        .push_bind(id);
    match lock {
        Lock::None => {}
        Lock::Update => {
            qb.push(" FOR NO KEY UPDATE OF ").push(table.alias);
        }
        Lock::Delete => {
            qb.push(" FOR UPDATE OF ").push(table.alias);
        }
    }
    qb.build_query_as::<R>()
        .fetch_optional(exec)
        .await?
        .ok_or(CoreError::not_found(table.entity))
}

/// The model of `id` if it is in `scope`, else `NotFound`.
pub(super) async fn get<R: Record>(pool: &PgPool, scope: &Scope, id: Uuid) -> Result<R::Model> {
    let mut tx = scoped_tx(pool, scope).await?;
    let row = fetch::<R>(&mut *tx, scope, id, Lock::None).await?;
    tx.commit().await?;
    row.into_model()
}

/// One page of the rows in `scope`, optionally with `column = value`, in
/// a transaction of that scope.
pub(super) async fn list<R: Record>(
    pool: &PgPool,
    scope: &Scope,
    filter: Option<(&'static str, Uuid)>,
    page: Page,
) -> Result<Listing<R::Model>> {
    let mut tx = scoped_tx(pool, scope).await?;
    let listing = list_in::<R>(&mut tx, scope, filter, page).await?;
    tx.commit().await?;
    Ok(listing)
}

/// [`list`] in a transaction already open in `scope`.
pub(super) async fn list_in<R: Record>(
    tx: &mut PgConnection,
    scope: &Scope,
    filter: Option<(&'static str, Uuid)>,
    page: Page,
) -> Result<Listing<R::Model>> {
    let alias = R::TABLE.alias;
    let mut qb = R::TABLE.select_in(scope);
    if let Some((column, value)) = filter {
        qb.push(" AND ").push(column).push(" = ").push_bind(value);
    }
    if let Some(after) = page.after() {
        qb.push(" AND ").push(alias).push(".id > ").push_bind(after);
    }
    qb.push(" ORDER BY ").push(alias).push(".id LIMIT ");
    qb.push_bind(i64::from(page.limit()) + 1);
    let rows = qb.build_query_as::<R>().fetch_all(tx).await?;
    let page_of_rows = Listing::from_overfetch(rows, page, R::id);
    Ok(Listing {
        items: page_of_rows
            .items
            .into_iter()
            .map(R::into_model)
            .collect::<Result<_>>()?,
        next_cursor: page_of_rows.next_cursor,
    })
}

/// Deletes the row of `id` if it is in `scope`; `InUse` while something
/// still refers to it.
pub(super) async fn delete<R: Record>(pool: &PgPool, scope: &Scope, id: Uuid) -> Result<()> {
    let mut tx = scoped_tx(pool, scope).await?;
    fetch::<R>(&mut *tx, scope, id, Lock::Delete).await?;
    sqlx::query(R::TABLE.delete)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| on_delete(e, R::TABLE.entity))?;
    tx.commit().await?;
    Ok(())
}

/// Maps a stored value that no longer parses to a storage failure.
pub(super) fn stored<T>(value: Result<T>) -> Result<T> {
    value.map_err(|e| CoreError::Storage(format!("stored value: {e}")))
}
