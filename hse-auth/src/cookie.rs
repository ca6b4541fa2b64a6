//! `Set-Cookie` values for browsers.
//!
//! Both cookies use the `__Host-` prefix, so browsers accept them only
//! with `Secure`, `Path=/` and no `Domain`; they are also `HttpOnly` and
//! `SameSite=Strict`. Their values are the tokens themselves: the caller
//! must never log these header values.

use chrono::Duration;

/// The access-token cookie name.
pub const ACCESS_COOKIE: &str = "__Host-hse_access";
/// The refresh-token cookie name.
pub const REFRESH_COOKIE: &str = "__Host-hse_refresh";

/// The `Set-Cookie` value carrying an access token for `max_age`.
#[must_use]
pub fn access_cookie(token: &str, max_age: Duration) -> String {
    build(ACCESS_COOKIE, token, max_age.num_seconds().max(0))
}

/// The `Set-Cookie` value carrying a refresh token for `max_age`.
#[must_use]
pub fn refresh_cookie(token: &str, max_age: Duration) -> String {
    build(REFRESH_COOKIE, token, max_age.num_seconds().max(0))
}

/// The `Set-Cookie` values that delete both cookies (sign-out).
#[must_use]
pub fn clear_cookies() -> [String; 2] {
    [build(ACCESS_COOKIE, "", 0), build(REFRESH_COOKIE, "", 0)]
}

/// Finds a cookie's value in a `Cookie` request header.
#[must_use]
pub fn read_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn build(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_every_required_attribute_and_no_domain() {
        let c = refresh_cookie("abc", Duration::days(30));
        assert_eq!(
            c,
            "__Host-hse_refresh=abc; Max-Age=2592000; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
        assert!(!access_cookie("t", Duration::minutes(15)).contains("Domain"));
        assert!(clear_cookies()[0].starts_with("__Host-hse_access=; Max-Age=0;"));
    }

    #[test]
    fn a_cookie_is_read_back_from_a_request_header() {
        let header = "a=1; __Host-hse_access=tok.en; b=2";
        assert_eq!(read_cookie(header, ACCESS_COOKIE), Some("tok.en"));
        assert_eq!(read_cookie(header, REFRESH_COOKIE), None);
    }
}
