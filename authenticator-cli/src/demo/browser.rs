//! The demo's browser: enough of one to sign in to an application through the sign-in
//! server's pages. It keeps cookies in a jar, follows redirects (`3xx` + `Location`) and a
//! page's immediate `<meta http-equiv="refresh">` as a browser does, reads pages with an HTML
//! tokenizer, and posts forms as a browser encodes them (every successful control of the
//! form, in document order, `application/x-www-form-urlencoded`). The sign-in page's script
//! (waiting for the phone, then submitting the page's form) is done by the demo with
//! [`Browser::fetch_json`] and [`Browser::submit`].
//!
//! What it prints is each address visited without its query (a query may carry a code or
//! state).
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use html5gum::{Token, Tokenizer};
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use url::Url;

/// A browser gives up after this many redirects in a row (Chromium: 20).
const MAX_REDIRECTS: usize = 20;

pub struct Browser {
    http: reqwest::Client,
}

/// A page the browser shows.
pub struct Page {
    pub url: Url,
    pub status: StatusCode,
    pub doc: Document,
}

/// What the demo needs of a page: its title, the text and attributes of its elements, its
/// forms and an immediate refresh.
#[derive(Debug, Default)]
pub struct Document {
    pub title: String,
    elements: Vec<Element>,
    forms: Vec<Form>,
    refresh: Option<String>,
}

#[derive(Debug)]
struct Element {
    attrs: BTreeMap<String, String>,
    /// The text right inside the element, before the next tag.
    text: String,
}

#[derive(Debug, Default)]
struct Form {
    attrs: BTreeMap<String, String>,
    /// Successful controls: (name, value), in document order.
    fields: Vec<(String, String)>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Document {
    pub fn parse(html: &str) -> Document {
        let mut doc = Document::default();
        let mut open_form: Option<usize> = None;
        let mut in_title = false;
        for token in Tokenizer::new(html).flatten() {
            match token {
                Token::StartTag(tag) => {
                    let name = lossy(&tag.name);
                    let attrs: BTreeMap<String, String> = tag
                        .attributes
                        .iter()
                        .map(|(k, v)| (lossy(k), lossy(&v.value)))
                        .collect();
                    in_title = name == "title";
                    match name.as_str() {
                        "form" => {
                            doc.forms.push(Form {
                                attrs: attrs.clone(),
                                fields: Vec::new(),
                            });
                            open_form = Some(doc.forms.len() - 1);
                        }
                        "input" => {
                            if let (Some(form), Some(field)) = (open_form, successful(&attrs)) {
                                doc.forms[form].fields.push(field);
                            }
                        }
                        "meta" => {
                            let refresh = attrs
                                .get("http-equiv")
                                .is_some_and(|v| v.eq_ignore_ascii_case("refresh"));
                            if refresh {
                                doc.refresh = attrs.get("content").and_then(|c| immediate(c));
                            }
                        }
                        _ => {}
                    }
                    doc.elements.push(Element {
                        attrs,
                        text: String::new(),
                    });
                }
                Token::EndTag(tag) => {
                    if &tag.name[..] == b"form" {
                        open_form = None;
                    }
                    in_title = false;
                    // Text after an end tag belongs to no element the demo reads.
                    doc.elements.push(Element {
                        attrs: BTreeMap::new(),
                        text: String::new(),
                    });
                }
                Token::String(s) => {
                    let s = lossy(&s);
                    if in_title {
                        doc.title.push_str(&s);
                    }
                    if let Some(last) = doc.elements.last_mut() {
                        last.text.push_str(&s);
                    }
                }
                _ => {}
            }
        }
        doc.title = doc.title.trim().to_owned();
        doc
    }

    /// The text of the element with this id.
    pub fn text_by_id(&self, id: &str) -> Option<String> {
        self.elements
            .iter()
            .find(|e| e.attrs.get("id").is_some_and(|v| v == id))
            .map(|e| e.text.trim().to_owned())
    }

    /// The value of `attr` on the first element that has it.
    pub fn attr(&self, attr: &str) -> Option<&str> {
        self.elements
            .iter()
            .find_map(|e| e.attrs.get(attr))
            .map(String::as_str)
    }

    fn form(&self, id: &str) -> Option<&Form> {
        self.forms.iter().find(|f| {
            f.attrs.get("id").is_some_and(|v| v == id)
                || f.attrs.get("action").is_some_and(|v| v == id)
        })
    }
}

/// A control that a form submission carries: named, not a button, not an unchecked box.
fn successful(attrs: &BTreeMap<String, String>) -> Option<(String, String)> {
    let name = attrs.get("name")?;
    let kind = attrs
        .get("type")
        .map(|t| t.to_ascii_lowercase())
        .unwrap_or_default();
    if attrs.contains_key("disabled")
        || matches!(
            kind.as_str(),
            "submit" | "button" | "image" | "reset" | "file"
        )
        || (matches!(kind.as_str(), "checkbox" | "radio") && !attrs.contains_key("checked"))
    {
        return None;
    }
    let default = if matches!(kind.as_str(), "checkbox" | "radio") {
        "on"
    } else {
        ""
    };
    Some((
        name.clone(),
        attrs
            .get("value")
            .cloned()
            .unwrap_or_else(|| default.into()),
    ))
}

/// The target of a refresh with no delay: `0;url=...` (or `0; URL='...'`).
fn immediate(content: &str) -> Option<String> {
    let (delay, rest) = content.split_once([';', ','])?;
    if delay.trim().parse::<f64>().ok()? != 0.0 {
        return None;
    }
    let rest = rest.trim();
    let url = rest
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("url="))
        .map(|_| &rest[4..])?
        .trim()
        .trim_matches(['\'', '"']);
    (!url.is_empty()).then(|| url.to_owned())
}

/// An address as the demo prints it: without the query, which may carry a secret.
pub fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let had_query = u.query().is_some();
    u.set_query(None);
    u.set_fragment(None);
    if had_query {
        format!("{u}?…")
    } else {
        u.to_string()
    }
}

impl Browser {
    pub fn new() -> Result<Browser> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("phone-sign-in-demo-browser")
            .default_headers(crate::demo_server::geoip::browser_headers()?)
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot set up the demo's browser")?;
        Ok(Browser { http })
    }

    /// Types an address into the address bar.
    pub async fn open(&self, url: &str) -> Result<Page> {
        let url = Url::parse(url).with_context(|| format!("not an address: {url}"))?;
        println!("   🌐 GET {}", shown(&url));
        self.navigate(Method::GET, url, None).await
    }

    /// Submits the page's form named by its `id` or `action`, with `typed` filled in (each a
    /// field of that form, as a user types into it).
    pub async fn submit(&self, page: &Page, form: &str, typed: &[(&str, &str)]) -> Result<Page> {
        let f = page
            .doc
            .form(form)
            .with_context(|| format!("the page {:?} has no form {form:?}", page.doc.title))?;
        let mut fields = f.fields.clone();
        for (name, value) in typed {
            let field = fields
                .iter_mut()
                .find(|(n, _)| n == name)
                .with_context(|| format!("the form {form:?} has no field {name:?}"))?;
            field.1 = (*value).to_owned();
        }
        let action = f.attrs.get("action").map(String::as_str).unwrap_or("");
        let target = page
            .url
            .join(action)
            .with_context(|| format!("the form's action {action:?}"))?;
        let method = match f.attrs.get("method").map(|m| m.to_ascii_lowercase()) {
            Some(m) if m == "post" => Method::POST,
            _ => Method::GET,
        };
        println!("   🌐 {method} {} (form)", shown(&target));
        if method == Method::GET {
            let mut url = target;
            url.query_pairs_mut().clear().extend_pairs(&fields);
            return self.navigate(Method::GET, url, None).await;
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        // A browser sends its page's origin with a form post.
        let origin = page.url.origin().ascii_serialization();
        self.navigate(Method::POST, target, Some((body, origin)))
            .await
    }

    /// What a page's script fetches from its own origin (credentials included).
    pub async fn fetch_json(&self, page: &Page, path: &str) -> Result<serde_json::Value> {
        let url = page.url.join(path)?;
        let resp = self.http.get(url).send().await?.error_for_status()?;
        Ok(resp.json().await?)
    }

    /// One navigation: the request, then its redirects and immediate refreshes.
    /// `form`: a form post's body and the origin of the page that posts it.
    async fn navigate(
        &self,
        method: Method,
        url: Url,
        form: Option<(String, String)>,
    ) -> Result<Page> {
        let (mut method, mut url, mut form) = (method, url, form);
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some((body, origin)) = form.take() {
                req = req
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .header(reqwest::header::ORIGIN, origin)
                    .body(body);
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("{method} {}", shown(&url)))?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .with_context(|| format!("a {status} without Location"))?;
                let next = url.join(location).context("the redirect's Location")?;
                println!("      {} → {}", status.as_u16(), shown(&next));
                if status == StatusCode::TEMPORARY_REDIRECT
                    || status == StatusCode::PERMANENT_REDIRECT
                {
                    bail!("the demo's browser does not repeat a request on a 307/308");
                }
                (method, url) = (Method::GET, next);
                continue;
            }
            let html = resp
                .text()
                .await
                .with_context(|| format!("reading {}", shown(&url)))?;
            let doc = Document::parse(&html);
            if let Some(to) = doc.refresh.as_deref() {
                let next = url.join(to).context("the page's refresh address")?;
                println!(
                    "      {} {:?}, refresh → {}",
                    status.as_u16(),
                    doc.title,
                    shown(&next)
                );
                (method, url) = (Method::GET, next);
                continue;
            }
            println!("      {} {:?}", status.as_u16(), doc.title);
            return Ok(Page { url, status, doc });
        }
        bail!("too many redirects")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forms_text_and_refresh_as_a_browser_does() {
        let doc = Document::parse(
            r#"<!DOCTYPE html><html><head><title>Sign in · X</title>
            <meta http-equiv="refresh" content="0;url=http://a.test/cb?code=1&amp;state=2"></head>
            <body><form id="f" method="post" action="/signin">
            <input type="hidden" name="csrf" value="a&amp;b">
            <input type="text" name="upn" value="">
            <input type="checkbox" name="off"><input type="checkbox" name="on" checked>
            <button type="submit" id="next">Next</button></form>
            <p class="number" id="number" aria-label="x">42</p>
            <section data-request-id="r-1"></section></body></html>"#,
        );
        assert_eq!(doc.title, "Sign in · X");
        assert_eq!(
            doc.refresh.as_deref(),
            Some("http://a.test/cb?code=1&state=2")
        );
        let form = doc.form("f").unwrap();
        assert_eq!(
            form.fields,
            [
                ("csrf".to_owned(), "a&b".to_owned()),
                ("upn".to_owned(), String::new()),
                ("on".to_owned(), "on".to_owned())
            ]
        );
        assert!(doc.form("/signin").is_some());
        assert_eq!(doc.text_by_id("number").as_deref(), Some("42"));
        assert_eq!(doc.attr("data-request-id"), Some("r-1"));
    }

    #[test]
    fn a_delayed_refresh_is_not_followed_and_queries_are_not_shown() {
        assert_eq!(immediate("5;url=/x"), None);
        assert_eq!(immediate("0; URL='/x'").as_deref(), Some("/x"));
        let u = Url::parse("http://127.0.0.1:1/callback?code=secret&state=s").unwrap();
        assert_eq!(shown(&u), "http://127.0.0.1:1/callback?…");
        assert!(!shown(&u).contains("secret"));
    }
}
