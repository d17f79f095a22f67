//! Account operations shared by the CLI and the server's first start: creating a user with
//! their home and default calendar, the initial `admin`, app passwords.

use crate::auth;
use crate::ical::ComponentKind;
use crate::store::{NewCalendar, Principal, Store, StoreError};

/// The calendar every new user gets at `/calendars/NAME/default/`.
pub fn default_calendar() -> NewCalendar {
    NewCalendar {
        name: "default".into(),
        displayname: Some("Calendar".into()),
        components: vec![ComponentKind::Event, ComponentKind::Todo],
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("invalid user name {0:?}: use 1–64 characters from A–Z a–z 0–9 . _ - @ +, starting with a letter or digit")]
    InvalidName(String),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("password must not be empty")]
    EmptyPassword,
    #[error("invalid e-mail address {0:?}")]
    InvalidEmail(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-@+".contains(c))
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub async fn add_user(
    store: &dyn Store,
    name: &str,
    email: Option<&str>,
    password: &str,
) -> Result<Principal, UserError> {
    if !valid_name(name) {
        return Err(UserError::InvalidName(name.into()));
    }
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    if let Some(e) = email {
        if !valid_email(e) {
            return Err(UserError::InvalidEmail(e.into()));
        }
    }
    let hash = auth::hash_password(password).map_err(|e| UserError::Hash(e.to_string()))?;
    store
        .create_principal(name, email, &hash, &default_calendar())
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => UserError::Exists(name.into()),
            e => e.into(),
        })
}

pub async fn set_password(store: &dyn Store, name: &str, password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    let hash = auth::hash_password(password).map_err(|e| UserError::Hash(e.to_string()))?;
    store.set_password(name, &hash).await.map_err(|e| match e {
        StoreError::NotFound => UserError::NoSuchUser(name.into()),
        e => e.into(),
    })
}

/// Creates an app password and returns it; only its hash is stored.
pub async fn add_app_password(
    store: &dyn Store,
    user: &str,
    label: &str,
) -> Result<String, UserError> {
    let p = store
        .principal_by_name(user)
        .await?
        .ok_or_else(|| UserError::NoSuchUser(user.into()))?;
    let (lookup, full) = auth::generate_app_password();
    let hash = auth::hash_password(&full).map_err(|e| UserError::Hash(e.to_string()))?;
    store
        .add_app_password(p.id, label, &lookup, &hash)
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => UserError::Exists(format!("{user}/{label}")),
            e => e.into(),
        })?;
    Ok(full)
}

/// On first start with no users: creates `admin`. Returns the password when it was generated
/// (the caller prints it once).
pub async fn ensure_admin(
    store: &dyn Store,
    password: Option<&str>,
) -> Result<Option<String>, UserError> {
    if store.principal_count().await? > 0 {
        return Ok(None);
    }
    let generated = password.is_none().then(auth::generate_password);
    let pw = password
        .map(str::to_owned)
        .or_else(|| generated.clone())
        .unwrap_or_default();
    match add_user(store, "admin", None, &pw).await {
        // Another process sharing the database created it first.
        Err(UserError::Exists(_)) => Ok(None),
        Err(e) => Err(e),
        Ok(_) => Ok(generated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("alice") && valid_name("a.b-c_d@x+y") && valid_name("7"));
        assert!(!valid_name("") && !valid_name(".x") && !valid_name("a/b") && !valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
