//! The learner's use cases on existing sessions: list, rename, delete, and
//! edit the settings. Another user's session reads exactly like a missing
//! one on every verb.

use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};

use super::PracticeService;
use super::tx::{self, TxError};
use crate::domain::{
    Session, SessionFilter, SessionPatch, Settings, SettingsPatch, UserId, now_micros,
};
use crate::error::Error;
use crate::store::{Responses, SessionQuery};

pub const DEFAULT_PAGE_SIZE: i32 = 20;
pub const MAX_PAGE_SIZE: i32 = 100;

/// A page of sessions and the token for the next one (empty on the last).
pub struct SessionPage {
    pub sessions: Vec<Session>,
    pub next_page_token: String,
}

fn not_found(session_id: i64) -> Error {
    Error::NotFound(format!("session {session_id} not found"))
}

/// Where a listing stands: the first page's moment, the last session
/// served, and the filters it was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    as_of: DateTime<Utc>,
    after: (DateTime<Utc>, i64),
    filter: SessionFilter,
}

fn opt(id: Option<i64>) -> String {
    id.map_or_else(|| "-".to_string(), |id| id.to_string())
}

/// Page tokens are opaque to clients: versioned and base64url-encoded.
fn encode_token(c: &Cursor) -> String {
    let text = format!(
        "v1:{}:{}:{}:{}:{}",
        c.as_of.timestamp_micros(),
        c.after.0.timestamp_micros(),
        c.after.1,
        opt(c.filter.class_id),
        opt(c.filter.project_id)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_token(token: &str) -> Option<Cursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let parts: Vec<&str> = text.strip_prefix("v1:")?.split(':').collect();
    let [as_of, placed, id, class_id, project_id] = parts[..] else {
        return None;
    };
    let time = |t: &str| DateTime::from_timestamp_micros(t.parse().ok()?);
    let filter_id = |t: &str| match t {
        "-" => Some(None),
        t => t.parse::<i64>().ok().filter(|n| *n >= 1).map(Some),
    };
    Some(Cursor {
        as_of: time(as_of)?,
        after: (time(placed)?, id.parse().ok()?),
        filter: SessionFilter {
            class_id: filter_id(class_id)?,
            project_id: filter_id(project_id)?,
        },
    })
}

impl PracticeService {
    /// The caller's sessions, most recently updated first, without their
    /// responses. Every page after the first shows the sessions as they
    /// stood when the first page was read: one added since is left out, one
    /// updated since stays in its old place, so each shows up exactly once.
    pub async fn list_sessions(
        &self,
        user: UserId,
        filter: SessionFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<SessionPage, Error> {
        let size = super::paging::page_size(page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let cursor = if page_token.is_empty() {
            let as_of = now_micros();
            // Every session stands at or before `as_of`.
            Cursor {
                as_of,
                after: (as_of + TimeDelta::microseconds(1), 0),
                filter,
            }
        } else {
            let bad = |why: &str| Error::invalid_field("page_token", why.to_string());
            let cursor = decode_token(page_token).ok_or_else(|| {
                bad("is not a token this API issued; start again with an empty one")
            })?;
            if cursor.filter != filter {
                return Err(bad(
                    "was issued for other filters; send the same class_id and project_id, or start again",
                ));
            }
            cursor
        };
        // One extra row tells whether another page follows.
        let mut page = self
            .store
            .session_page(
                user,
                &SessionQuery {
                    filter,
                    as_of: cursor.as_of,
                    after: cursor.after,
                    limit: size as i64 + 1,
                },
            )
            .await?;
        let more = page.len() > size;
        page.truncate(size);
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => encode_token(&Cursor {
                after: (last.placed_at, last.session_id),
                ..cursor
            }),
            _ => String::new(),
        };
        let mut sessions = Vec::with_capacity(page.len());
        for item in page {
            // A session deleted since the page was read is simply gone.
            if let Some(session) = self
                .store
                .session(user, item.session_id, Responses::Skip)
                .await?
            {
                sessions.push(session.shown());
            }
        }
        Ok(SessionPage {
            sessions,
            next_page_token,
        })
    }

    /// Renames the session or edits its notes; `updated_at` moves.
    pub async fn update_session(
        &self,
        user: UserId,
        session_id: i64,
        patch: SessionPatch,
    ) -> Result<Session, Error> {
        if !self
            .store
            .update_session(user, session_id, &patch, now_micros())
            .await?
        {
            return Err(not_found(session_id));
        }
        self.get_session(user, session_id).await
    }

    /// Deletes the session with everything that hangs off it. Its answers
    /// in flight here stop at once (as `cancelled`); those on another
    /// replica stop when they next save their text and find the row gone.
    pub async fn delete_session(&self, user: UserId, session_id: i64) -> Result<(), Error> {
        if self.store.delete_session(user, session_id).await? {
            self.answers.cancel_session(session_id);
            Ok(())
        } else {
            Err(not_found(session_id))
        }
    }

    /// Changes the settings fields present; a list of few-shot example ids
    /// replaces the links in its order. Each id must be one of the caller's
    /// own examples or one already linked to this session.
    pub async fn update_settings(
        &self,
        user: UserId,
        session_id: i64,
        patch: SettingsPatch,
    ) -> Result<Settings, Error> {
        patch.validate()?;
        if let Some(params) = &patch.generation_params {
            // A session's models never change, so they are read once,
            // before anything is written.
            let session = self
                .store
                .session(user, session_id, Responses::Skip)
                .await?
                .ok_or_else(|| not_found(session_id))?;
            let names: Vec<String> = session.models.into_iter().map(|m| m.model_name).collect();
            self.check_params(params, &names).map_err(|(key, why)| {
                Error::invalid_field(&format!("generation_params.{key}"), why)
            })?;
        }
        let now = now_micros();
        tx::run(|attempt| self.update_settings_once(user, session_id, &patch, now, attempt))
            .await?;
        Ok(self.get_session(user, session_id).await?.settings)
    }

    async fn update_settings_once(
        &self,
        user: UserId,
        session_id: i64,
        patch: &SettingsPatch,
        now: DateTime<Utc>,
        attempt: u32,
    ) -> Result<(), TxError> {
        let mut tx = self.store.begin_write(attempt).await?;
        let setting_id = tx
            .touch_session_settings(user, session_id, now)
            .await?
            .ok_or_else(|| not_found(session_id))?;
        tx.update_settings(setting_id, patch).await?;
        if let Some(ids) = &patch.few_shot_example_ids {
            let linked = tx.linked_example_ids(setting_id).await?;
            let owned: Vec<i64> = tx
                .example_owners(ids)
                .await?
                .into_iter()
                .filter(|(_, owner)| *owner == user.get())
                .map(|(id, _)| id)
                .collect();
            // A missing example, or another user's, is NOT_FOUND, as a
            // missing reference is in a create.
            if let Some((i, id)) = ids
                .iter()
                .enumerate()
                .find(|(_, id)| !owned.contains(id) && !linked.contains(id))
            {
                return Err(Error::NotFound(format!(
                    "few_shot_example_ids[{i}]: example {id} not found"
                ))
                .into());
            }
            tx.replace_links(setting_id, ids, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_forgeries() {
        let t = DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap();
        let cursor = Cursor {
            as_of: t,
            after: (t - TimeDelta::seconds(5), 42),
            filter: SessionFilter {
                class_id: Some(3),
                project_id: None,
            },
        };
        assert_eq!(decode_token(&encode_token(&cursor)), Some(cursor));
        for bad in ["", "x", "djE6MTox", "djI6MToyOjM6LTot", "!!!"] {
            assert_eq!(decode_token(bad), None, "{bad}");
        }
    }
}
