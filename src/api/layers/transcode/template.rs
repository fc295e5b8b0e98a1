//! `google.api.http` path templates: parsing, and matching a request path
//! in its canonical form only.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! A request path matches only if it is canonical: no empty segments
//! (`//`, a trailing `/`), no `.` or `..`, and no encoded `/` (`%2F`) —
//! so no spelling of a path can reach a route that its plain form doesn't.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: one segment.
    Single,
    /// `**`: the rest of the path (at least one segment).
    Multi,
}

/// A variable: the field it binds and the segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub field_path: Vec<String>,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
    source: String,
}

/// The values of a matched path's variables, percent-decoded.
pub type Captures = Vec<(Vec<String>, String)>;

fn parse_segment(raw: &str) -> Result<Segment, String> {
    match raw {
        "*" => Ok(Segment::Single),
        "**" => Ok(Segment::Multi),
        "" => Err("empty segment".into()),
        lit if lit.contains(['{', '}', '*', '=']) => Err(format!("bad literal {lit:?}")),
        lit => Ok(Segment::Literal(lit.to_owned())),
    }
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        let rest = source
            .strip_prefix('/')
            .ok_or_else(|| format!("{source:?} must start with /"))?;
        // The verb follows the last ':' outside any variable.
        let (body, verb) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('}') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = body;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner
                    .find('}')
                    .ok_or_else(|| format!("{source:?}: unclosed variable"))?;
                let (name, pattern) = match inner[..close].split_once('=') {
                    Some((n, p)) => (n, p),
                    None => (&inner[..close], "*"),
                };
                let start = segments.len();
                for seg in pattern.split('/') {
                    segments.push(parse_segment(seg)?);
                }
                variables.push(Variable {
                    field_path: name.split('.').map(str::to_owned).collect(),
                    start,
                    end: segments.len(),
                });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                segments.push(parse_segment(&chars[..end])?);
                chars = &chars[end..];
            }
            if let Some(next) = chars.strip_prefix('/') {
                if next.is_empty() {
                    return Err(format!("{source:?}: trailing /"));
                }
                chars = next;
            }
        }
        if let Some(i) = segments.iter().position(|s| *s == Segment::Multi)
            && i + 1 != segments.len()
        {
            return Err(format!("{source:?}: ** must be last"));
        }
        Ok(Template {
            segments,
            variables,
            verb,
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.variables.iter()
    }

    /// The OpenAPI form of the path: `/a/{b}`; `None` if a variable spans
    /// more than a plain segment (such paths can't be written in OpenAPI).
    pub fn openapi_path(&self) -> Option<String> {
        let mut out = String::new();
        let mut i = 0;
        while i < self.segments.len() {
            out.push('/');
            if let Some(v) = self.variables.iter().find(|v| v.start == i) {
                if v.end - v.start != 1 || self.segments[i] != Segment::Single {
                    return None;
                }
                out.push('{');
                out.push_str(&v.field_path.join("."));
                out.push('}');
                i = v.end;
                continue;
            }
            match &self.segments[i] {
                Segment::Literal(l) => out.push_str(l),
                _ => return None,
            }
            i += 1;
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        Some(out)
    }

    /// Matches a request path (without the query). `None` if it doesn't
    /// match or isn't canonical.
    pub fn matches(&self, path: &str) -> Option<Captures> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let decoded = canonical_segments(rest)?;
        if !self.match_from(0, &decoded) {
            return None;
        }
        let multi_len = decoded.len() + 1 - self.segments.len();
        let mut captures = Vec::with_capacity(self.variables.len());
        for v in &self.variables {
            // Map template indices to path indices: only a trailing `**` can
            // span more than one path segment.
            let start = v.start;
            let end =
                if v.end == self.segments.len() && self.segments.last() == Some(&Segment::Multi) {
                    v.end - 1 + multi_len
                } else {
                    v.end
                };
            captures.push((v.field_path.clone(), decoded[start..end].join("/")));
        }
        Some(captures)
    }

    fn match_from(&self, i: usize, path: &[String]) -> bool {
        if self.segments.len() == i {
            return path.len() == i;
        }
        match &self.segments[i] {
            Segment::Multi => path.len() > i,
            Segment::Single => path.len() > i && self.match_from(i + 1, path),
            Segment::Literal(l) => path.get(i) == Some(l) && self.match_from(i + 1, path),
        }
    }
}

/// Splits and percent-decodes a path; `None` for any non-canonical form.
fn canonical_segments(rest: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            return None;
        }
        let decoded = percent_decode_str(raw).decode_utf8().ok()?;
        if decoded == "." || decoded == ".." || decoded.contains('/') || decoded.contains('\\') {
            return None;
        }
        if decoded.chars().any(char::is_control) {
            return None;
        }
        out.push(decoded.into_owned());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(t: &str, path: &str) -> Option<Vec<(String, String)>> {
        Template::parse(t)
            .unwrap()
            .matches(path)
            .map(|c| c.into_iter().map(|(f, v)| (f.join("."), v)).collect())
    }

    #[test]
    fn literal_and_single_variables() {
        assert_eq!(
            caps("/user/practice/sessions", "/user/practice/sessions"),
            Some(vec![])
        );
        assert_eq!(
            caps(
                "/user/practice/sessions/{session_id}",
                "/user/practice/sessions/17"
            ),
            Some(vec![("session_id".into(), "17".into())])
        );
        assert_eq!(
            caps(
                "/user/practice/sessions/{session_id}",
                "/user/practice/sessions"
            ),
            None
        );
        assert_eq!(
            caps(
                "/user/practice/sessions/{session_id}",
                "/user/practice/sessions/1/2"
            ),
            None
        );
    }

    #[test]
    fn non_canonical_paths_never_match() {
        let t = "/user/practice/sessions/{session_id}";
        for path in [
            "/user/practice/sessions/17/",
            "/user//practice/sessions/17",
            "/user/practice/./sessions/17",
            "/user/practice/x/../sessions/17",
            "/user/practice/sessions/..",
            "/user/practice/sessions/%2E%2E",
            "/user/practice/sessions/1%2F7",
            "/user/practice/sessions/1%5C7",
            "/user/practice/sessions/%00",
            "/user/practice/sessions/%FF",
            "user/practice/sessions/17",
        ] {
            assert_eq!(caps(t, path), None, "{path}");
        }
        assert_eq!(
            caps("/user/practice/sessions", "/user/practice/sessions/"),
            None
        );
        assert_eq!(
            caps("/user/practice/sessions", "/user/practice/Sessions"),
            None
        );
    }

    #[test]
    fn percent_decoding_of_values() {
        assert_eq!(
            caps("/a/{name}", "/a/hello%20world"),
            Some(vec![("name".into(), "hello world".into())])
        );
    }

    #[test]
    fn complex_variables_and_verbs() {
        assert_eq!(
            caps("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2"),
            Some(vec![("name".into(), "shelves/1/books/2".into())])
        );
        assert_eq!(
            caps("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/cds/2"),
            None
        );
        assert_eq!(
            caps("/v1/{path=**}", "/v1/a/b/c"),
            Some(vec![("path".into(), "a/b/c".into())])
        );
        assert_eq!(caps("/v1/{path=**}", "/v1"), None);
        assert_eq!(
            caps("/v1/{a.b}/x:run", "/v1/7/x:run"),
            Some(vec![("a.b".into(), "7".into())])
        );
        assert_eq!(caps("/v1/{a.b}/x:run", "/v1/7/x"), None);
    }

    #[test]
    fn openapi_paths() {
        assert_eq!(
            Template::parse("/user/practice/sessions/{session_id}")
                .unwrap()
                .openapi_path()
                .as_deref(),
            Some("/user/practice/sessions/{session_id}")
        );
        assert_eq!(Template::parse("/v1/{p=**}").unwrap().openapi_path(), None);
    }

    #[test]
    fn bad_templates() {
        for t in ["no-slash", "/a/{b", "/a//b", "/a/**/b", "/a/"] {
            assert!(Template::parse(t).is_err(), "{t}");
        }
    }
}
