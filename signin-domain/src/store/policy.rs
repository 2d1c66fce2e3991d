//! The one row of the Authenticator policy.
use super::{now_ms, Pool, StoreResult};

/// The policy as stored; `target` and `mode` are their text forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub enabled: bool,
    pub target: String,
    pub mode: String,
    pub number_matching: bool,
    pub show_app_name: bool,
    pub show_location: bool,
    pub number_length: i64,
    pub new_device_approval: bool,
    pub phishing_resistant: bool,
    /// The excluded groups, one a line.
    pub exclude_groups: String,
    /// Whom the application name and the location are shown to: a target's text form and
    /// the excluded groups, one a line.
    pub app_name_target: String,
    pub app_name_exclude: String,
    pub location_target: String,
    pub location_exclude: String,
}

pub async fn load(pool: &Pool) -> StoreResult<PolicyRow> {
    type Row = (
        i64,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        String,
        String,
        String,
        String,
        String,
    );
    let (
        enabled,
        target,
        mode,
        nm,
        app,
        loc,
        digits,
        approval,
        bound,
        exclude,
        app_name_target,
        app_name_exclude,
        location_target,
        location_exclude,
    ): Row = sqlx::query_as(
        "SELECT enabled, target, mode, number_matching, show_app_name, show_location, \
         number_length, new_device_approval, phishing_resistant, exclude_groups, \
         app_name_target, app_name_exclude, location_target, location_exclude \
         FROM policy WHERE id = 1",
    )
    .fetch_one(pool)
    .await?;
    Ok(PolicyRow {
        enabled: enabled != 0,
        target,
        mode,
        number_matching: nm != 0,
        show_app_name: app != 0,
        show_location: loc != 0,
        number_length: digits,
        new_device_approval: approval != 0,
        phishing_resistant: bound != 0,
        exclude_groups: exclude,
        app_name_target,
        app_name_exclude,
        location_target,
        location_exclude,
    })
}

/// Saves the policy and a new cache generation (`cache::changed`), in one transaction.
pub async fn save(pool: &Pool, p: &PolicyRow) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE policy SET enabled = $1, target = $2, mode = $3, number_matching = $4, \
         show_app_name = $5, show_location = $6, number_length = $7, \
         new_device_approval = $8, phishing_resistant = $9, updated_at = $10, \
         exclude_groups = $11, app_name_target = $12, app_name_exclude = $13, \
         location_target = $14, location_exclude = $15 WHERE id = 1",
    )
    .bind(i64::from(p.enabled))
    .bind(&p.target)
    .bind(&p.mode)
    .bind(i64::from(p.number_matching))
    .bind(i64::from(p.show_app_name))
    .bind(i64::from(p.show_location))
    .bind(p.number_length)
    .bind(i64::from(p.new_device_approval))
    .bind(i64::from(p.phishing_resistant))
    .bind(now_ms())
    .bind(&p.exclude_groups)
    .bind(&p.app_name_target)
    .bind(&p.app_name_exclude)
    .bind(&p.location_target)
    .bind(&p.location_exclude)
    .execute(&mut *tx)
    .await?;
    super::cache::changed(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
