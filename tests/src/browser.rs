//! A scripted browser on the server's pages (reqwest): one session cookie, no redirects
//! followed, forms posted with the page's CSRF token.
use anyhow::{bail, Context, Result};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::{TestPhone, TestServer};

/// A browser on the sign-in pages: one session cookie, no redirects followed.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Browser {
    pub fn new(server: &TestServer) -> Self {
        Browser {
            base: server.base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn take(&mut self, r: reqwest::Response) -> Result<Page> {
        if let Some(set) = r.headers().get(SET_COOKIE) {
            let pair = set
                .to_str()?
                .split(';')
                .next()
                .context("cookie")?
                .to_owned();
            self.cookie = Some(pair);
        }
        Ok(Page {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap_or_default().to_owned()),
            headers: r.headers().clone(),
            body: r.text().await?,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Page> {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await?;
        self.take(r).await
    }

    pub async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Result<Page> {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(pairs);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await?;
        self.take(r).await
    }

    /// The CSRF token of the form on `path`.
    pub async fn csrf(&mut self, path: &str) -> Result<String> {
        let page = self.get(path).await?;
        let Some(at) = page.body.find("name=\"csrf\" value=\"") else {
            bail!("no form on {path}: {} {}", page.status, page.body);
        };
        let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
        Ok(rest[..rest.find('"').context("csrf end")?].to_owned())
    }

    /// Types the UPN on `/signin`, then a code on `/signin/fallback`.
    pub async fn sign_in_with_code(&mut self, upn: &str, code: &str) -> Result<Page> {
        let csrf = self.csrf("/signin").await?;
        let r = self
            .post("/signin", &[("csrf", &csrf), ("upn", upn)])
            .await?;
        if r.status != StatusCode::SEE_OTHER {
            bail!("UPN not taken: {}", r.status);
        }
        let csrf = self.csrf("/signin/fallback").await?;
        self.post("/signin/fallback", &[("csrf", &csrf), ("code", code)])
            .await
    }

    /// Phone sign-in on the pages: types the UPN, `phone` approves with the number the wait
    /// page shows, then "I've answered on my phone". Returns the completing page.
    pub async fn sign_in_with_phone(&mut self, upn: &str, phone: &TestPhone) -> Result<Page> {
        let csrf = self.csrf("/signin").await?;
        let r = self
            .post("/signin", &[("csrf", &csrf), ("upn", upn)])
            .await?;
        if r.location.as_deref() != Some("/signin/wait") {
            bail!("no phone sign-in: {} {:?} {}", r.status, r.location, r.body);
        }
        let wait = self.get("/signin/wait").await?;
        let number =
            between(&wait.body, "id=\"number\"", ">", "<").context("no number on the wait page")?;
        let id = between(&wait.body, "data-request-id=\"", "", "\"")
            .context("no request id on the wait page")?;
        // The page shows the sign-in's id, which is its first device's request id; another
        // of the user's phones holds its own request of the same sign-in.
        let mut request = None;
        for _ in 0..5 {
            let pending = phone.core.poll(5).await?;
            if let Some(r) = pending.iter().find(|r| r.request_id == id).or_else(|| {
                pending
                    .iter()
                    .filter(|r| r.upn == upn && r.number_matching)
                    .max_by_key(|r| r.created_at_ms)
            }) {
                request = Some(r.clone());
                break;
            }
        }
        let request = request.context("the sign-in did not reach the phone")?;
        phone
            .core
            .approve(request.account_id, request.request_id, number)
            .await?;
        let csrf = self.csrf("/signin/wait").await?;
        self.post("/signin/complete", &[("csrf", &csrf)]).await
    }

    /// The same browser (its session cookie) talking to another server instance on the same
    /// database.
    pub fn on(&self, server: &TestServer) -> Browser {
        let mut other = Browser::new(server);
        other.cookie = self.cookie.clone();
        other
    }

    /// Whether this browser is signed in (`/me` answers instead of sending it to `/signin`).
    pub async fn is_signed_in(&mut self) -> Result<bool> {
        let r = self.get("/me").await?;
        Ok(r.status == StatusCode::OK)
    }
}

/// The text after `start`, then after `skip`, up to `end`.
fn between(text: &str, start: &str, skip: &str, end: &str) -> Option<String> {
    let rest = &text[text.find(start)? + start.len()..];
    let rest = &rest[rest.find(skip)? + skip.len()..];
    Some(rest[..rest.find(end)?].to_owned())
}
