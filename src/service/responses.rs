//! Reading a session's responses back: `ListResponses`' pages, oldest
//! first, and the newest a session read shows, each within one reply's
//! budget of text.

use super::conversation::ConversationService;
use crate::domain::UserId;
use crate::domain::session::Response;
use crate::error::Error;
use crate::store::{ResponseBudget, ResponseSlice, Responses};

/// Responses a page of `ListResponses` holds by default and at most.
pub const DEFAULT_RESPONSE_PAGE: i32 = 20;
pub const MAX_RESPONSE_PAGE: i32 = 100;

/// The characters of prompt and answer text one reply carries at most in
/// responses (a page, or a session's newest). A reply always carries at
/// least one response, and one response is at most a 32,000-character
/// prompt and a 64 KiB answer.
pub const REPLY_TEXT_CHARS: i64 = 256 * 1024;

/// What those characters can take in a reply: 6 bytes of JSON each at
/// most (a control character's `\u00XX`). A session's own rows must leave
/// this much of the reply limit free (see `PracticeService`).
pub const REPLY_TEXT_BYTES: usize = REPLY_TEXT_CHARS as usize * 6;

/// What a session read shows of its responses: the newest that fit.
pub const NEWEST_RESPONSES: Responses = Responses::Newest(ResponseBudget {
    count: 20,
    chars: REPLY_TEXT_CHARS,
});

/// A page of a session's responses and the token for the next one.
pub struct ResponsePage {
    pub responses: Vec<Response>,
    pub next_page_token: String,
}

impl ConversationService {
    /// The caller's session's responses, oldest first, a page at a time.
    /// Pages after the first show the responses there were when the first
    /// was read: later prompts' responses are left out.
    pub async fn list_responses(
        &self,
        user: UserId,
        session_id: i64,
        page_size: i32,
        page_token: &str,
    ) -> Result<ResponsePage, Error> {
        let size = super::paging::page_size(page_size, DEFAULT_RESPONSE_PAGE, MAX_RESPONSE_PAGE);
        let (after, upto) = if page_token.is_empty() {
            (0, None)
        } else {
            let (session, after, upto) =
                super::paging::decode_response_token(page_token).ok_or_else(|| {
                    Error::invalid_field(
                        "page_token",
                        "is not a token this API issued for this session; start again with an empty one",
                    )
                })?;
            if session != session_id {
                return Err(Error::invalid_field(
                    "page_token",
                    "was issued for another session; start again with an empty one",
                ));
            }
            (after, Some(upto))
        };
        let budget = ResponseBudget {
            count: size,
            chars: REPLY_TEXT_CHARS,
        };
        let ResponseSlice {
            responses,
            more,
            upto,
        } = self
            .store
            .response_page(user, session_id, after, upto, budget)
            .await?
            .ok_or_else(|| Error::NotFound(format!("session {session_id} not found")))?;
        let next_page_token = match (more, responses.last()) {
            (true, Some(last)) => {
                super::paging::encode_response_token(session_id, last.response_id, upto)
            }
            _ => String::new(),
        };
        Ok(ResponsePage {
            responses: responses.into_iter().map(Response::shown).collect(),
            next_page_token,
        })
    }
}
