//! A small evaluator for the subset of Go templates (as Helm runs them) that the chart's
//! config block uses: text, `{{-`/`-}}` trimming, comments, `if`/`else`/`end`, and pipelines
//! of one operand followed by `toJson` or `quote`. Operands: `.root.Values.a.b` (or
//! `.Values.a.b`), `.name` (a local of the include's dict), a string literal,
//! `printf "FMT" operand…` (`%s`, `%v`, `%d`) and `include "NAME" ARG` (answered by the
//! caller). Anything else is an error naming the action, never a silent guess.

use std::collections::BTreeMap;

use serde_json::Value;

/// What the template sees.
pub struct Scope<'a> {
    /// The chart's values, as Helm loads them.
    pub values: &'a Value,
    /// The keys of the dict the define was included with, other than `root`.
    pub locals: BTreeMap<String, Value>,
    /// Answers `include "NAME" …`.
    pub include: &'a dyn Fn(&str) -> Option<Value>,
}

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("locals", &self.locals)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Text(String),
    Action(String),
}

/// Splits a template into text and actions, applying `{{-` and `-}}` trimming.
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = rest[..open].to_owned();
        if trim_next {
            before = before.trim_start().to_owned();
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action near {:?}", &rest[open..]))?;
        let mut inner = &after[..close];
        let trim_before = inner.starts_with('-') && inner[1..].starts_with(char::is_whitespace);
        if trim_before {
            inner = &inner[1..];
            before = before.trim_end().to_owned();
        }
        trim_next = inner.ends_with('-') && inner[..inner.len() - 1].ends_with(char::is_whitespace);
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        tokens.push(Token::Text(before));
        tokens.push(Token::Action(inner.trim().to_owned()));
        rest = &after[close + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    tokens.push(Token::Text(tail.to_owned()));
    Ok(tokens)
}

fn keyword(action: &str) -> &str {
    action.split_whitespace().next().unwrap_or("")
}

/// Renders the body of `{{ define "NAME" }}` found in `text`.
pub fn render_define(text: &str, name: &str, scope: &Scope<'_>) -> Result<String, String> {
    let tokens = tokenize(text)?;
    let opening = format!("define {name:?}");
    let start = tokens
        .iter()
        .position(|t| matches!(t, Token::Action(a) if *a == opening))
        .ok_or_else(|| format!("no {{{{ {opening} }}}}"))?;
    let mut depth = 0usize;
    let mut body = Vec::new();
    for token in &tokens[start + 1..] {
        if let Token::Action(a) = token {
            match keyword(a) {
                "if" | "range" | "with" | "define" => depth += 1,
                "end" if depth == 0 => return render(&body, scope),
                "end" => depth -= 1,
                _ => {}
            }
        }
        body.push(token.clone());
    }
    Err(format!("{{{{ {opening} }}}} has no end"))
}

fn render(tokens: &[Token], scope: &Scope<'_>) -> Result<String, String> {
    // Each open `if`: whether its parent renders, its condition, and whether we are past `else`.
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool, bool)]| {
        stack
            .last()
            .is_none_or(|&(parent, cond, in_else)| parent && (cond != in_else))
    };
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Text(text) => {
                if active(&stack) {
                    out.push_str(text);
                }
            }
            Token::Action(action) if action.starts_with("/*") && action.ends_with("*/") => {}
            Token::Action(action) => match keyword(action) {
                "if" => {
                    let parent = active(&stack);
                    let cond = truthy(&eval(action["if".len()..].trim(), scope)?);
                    stack.push((parent, cond, false));
                }
                "else" if action == "else" => match stack.last_mut() {
                    Some(top) => top.2 = true,
                    None => return Err("else outside if".into()),
                },
                "end" => {
                    stack.pop().ok_or("end outside if")?;
                }
                "range" | "with" | "define" | "else" | "block" | "template" => {
                    return Err(format!("unsupported action {{{{ {action} }}}}"));
                }
                _ => {
                    let value = eval(action, scope)?;
                    if active(&stack) {
                        out.push_str(&text_of(&value));
                    }
                }
            },
        }
    }
    if stack.is_empty() {
        Ok(out)
    } else {
        Err("unclosed if".into())
    }
}

/// Go template truth: false, 0, "", empty collections and nil are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value as `{{ }}` prints it (`%v`): strings bare, whole numbers without a fraction.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits on `sep` outside double-quoted strings.
fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if quoted {
            escaped = !escaped && c == '\\';
            if c == '"' && !escaped {
                quoted = false;
            }
        } else if c == '"' {
            quoted = true;
        } else if c == sep || (sep == ' ' && c.is_whitespace()) {
            parts.push(String::new());
            continue;
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn eval(pipeline: &str, scope: &Scope<'_>) -> Result<Value, String> {
    let stages = split_outside_quotes(pipeline, '|');
    let (first, functions) = stages
        .split_first()
        .ok_or_else(|| format!("empty pipeline {pipeline:?}"))?;
    let words = split_outside_quotes(first, ' ');
    let mut value = match words.first().map(String::as_str) {
        Some("printf") => {
            let format = words
                .get(1)
                .map(|w| unquote(w))
                .ok_or_else(|| format!("printf without a format in {pipeline:?}"))??;
            let args = words[2..]
                .iter()
                .map(|w| operand(w, scope))
                .collect::<Result<Vec<_>, _>>()?;
            Value::String(printf(&format, &args)?)
        }
        Some("include") => {
            let name = words
                .get(1)
                .map(|w| unquote(w))
                .ok_or_else(|| format!("include without a name in {pipeline:?}"))??;
            (scope.include)(&name).ok_or_else(|| format!("unknown include {name:?}"))?
        }
        Some(word) if words.len() == 1 => operand(word, scope)?,
        _ => return Err(format!("unsupported pipeline {pipeline:?}")),
    };
    for function in functions {
        value = match function.as_str() {
            "toJson" | "quote" => Value::String(
                serde_json::to_string(&value).map_err(|e| format!("{pipeline:?}: {e}"))?,
            ),
            other => return Err(format!("unsupported function {other:?} in {pipeline:?}")),
        };
        if function == "quote" {
            // quote prints a string's text in quotes, not a JSON value of a non-string.
            if let Value::String(s) = &value
                && !s.starts_with('"')
            {
                value = Value::String(format!("{s:?}"));
            }
        }
    }
    Ok(value)
}

fn unquote(word: &str) -> Result<String, String> {
    serde_json::from_str::<String>(word).map_err(|e| format!("bad string literal {word}: {e}"))
}

fn operand(word: &str, scope: &Scope<'_>) -> Result<Value, String> {
    if word.starts_with('"') {
        return unquote(word).map(Value::String);
    }
    let values_path = word
        .strip_prefix(".root.Values.")
        .or_else(|| word.strip_prefix(".Values."));
    if let Some(path) = values_path {
        return path
            .split('.')
            .try_fold(scope.values, |node, key| node.get(key))
            .cloned()
            .ok_or_else(|| format!("no value at {word}"));
    }
    if let Some(local) = word.strip_prefix('.')
        && !local.contains('.')
    {
        return scope
            .locals
            .get(local)
            .cloned()
            .ok_or_else(|| format!("no local {word}"));
    }
    Err(format!("unsupported operand {word:?}"))
}

fn printf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s' | 'v' | 'd') => {
                let arg = args
                    .next()
                    .ok_or_else(|| format!("printf {format:?}: too few arguments"))?;
                out.push_str(&text_of(arg));
            }
            other => return Err(format!("printf {format:?}: unsupported verb {other:?}")),
        }
    }
    if args.next().is_some() {
        return Err(format!("printf {format:?}: too many arguments"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(values: &Value) -> Scope<'_> {
        Scope {
            values,
            locals: BTreeMap::from([("who".to_owned(), Value::from("w"))]),
            include: &|name| (name == "x").then(|| Value::from("X")),
        }
    }

    #[test]
    fn renders_trimming_conditionals_and_pipelines() {
        let values = serde_json::json!({"a": {"b": "v\"q", "n": 9464, "off": ""}});
        let tpl = r#"{{- define "t" -}}
k = {{ .root.Values.a.b | toJson }}
{{- if .root.Values.a.off }}
never
{{- else }}
p = {{ printf "0.0.0.0:%v/%s" .root.Values.a.n .who | toJson }}
{{- end }}
i = {{ include "x" .root }}
{{- end }}"#;
        let out = render_define(tpl, "t", &scope(&values)).unwrap();
        assert_eq!(out, "k = \"v\\\"q\"\np = \"0.0.0.0:9464/w\"\ni = X");
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let values = serde_json::json!({"a": 1});
        let s = scope(&values);
        for (tpl, needle) in [
            (
                r#"{{ define "t" }}{{ .root.Values.zz }}{{ end }}"#,
                "no value",
            ),
            (
                r#"{{ define "t" }}{{ .root.Values.a | b64enc }}{{ end }}"#,
                "unsupported function",
            ),
            (
                r#"{{ define "t" }}{{ range .x }}{{ end }}{{ end }}"#,
                "unsupported action",
            ),
            (
                r#"{{ define "t" }}{{ include "y" . }}{{ end }}"#,
                "unknown include",
            ),
            (
                r#"{{ define "t" }}{{ .a.b }}{{ end }}"#,
                "unsupported operand",
            ),
        ] {
            let err = render_define(tpl, "t", &s).unwrap_err();
            assert!(err.contains(needle), "{tpl}: {err}");
        }
    }
}
