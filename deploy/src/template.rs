//! A small interpreter of Go templates as Helm runs them, enough to render this chart without
//! Helm: text with `{{-`/`-}}` trimming, comments, `define`, `if`/`else if`/`else`/`end`,
//! `range` (over a list, optionally into `$var`), `with`, variables (`$x := …`, `$x = …`,
//! `$`, `$x.field`), fields (`.a.b`), parenthesised pipelines, and the functions the chart
//! calls (listed on the private `Exec::call`). Values are JSON values; numbers from values
//! files are floats, as in Helm, so `printf "%d"` on one fails here as it misprints there.
//!
//! It is strict where Helm would be sloppy or fail at install time: a field of a missing
//! value, an unknown function or action, or a `required` with nothing is an error naming
//! it, never an empty guess.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// A parsed set of templates: each file under its name, and every `define` under its own.
#[derive(Debug, Default)]
pub struct Templates {
    named: BTreeMap<String, Vec<Node>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    /// A pipeline whose value is printed; or, with a variable, assigned (and not printed).
    Action(Option<(String, bool)>, Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Option<String>, Pipeline, Vec<Node>),
    With(Pipeline, Vec<Node>),
}

type Pipeline = Vec<Command>;
type Command = Vec<Arg>;

#[derive(Debug, Clone)]
enum Arg {
    Literal(Value),
    /// `.a.b` (empty path: the dot itself).
    Field(Vec<String>),
    /// `$name.a.b` (`$` alone has an empty name).
    Var(String, Vec<String>),
    Function(String),
    Sub(Pipeline),
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
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action near {:?}", &rest[open..]))?;
        let mut inner = &after[..close];
        if inner.starts_with('-') && inner[1..].starts_with(char::is_whitespace) {
            inner = &inner[1..];
            before = before.trim_end();
        }
        trim_next = inner.ends_with('-') && inner[..inner.len() - 1].ends_with(char::is_whitespace);
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        tokens.push(Token::Text(before.to_owned()));
        tokens.push(Token::Action(inner.trim().to_owned()));
        rest = &after[close + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    tokens.push(Token::Text(tail.to_owned()));
    Ok(tokens)
}

/// Splits an action into expression words: string literals, parentheses, `|`, `:=`, `=`,
/// and bare words.
fn lex(action: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let chars: Vec<char> = action.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(format!("unterminated string in {action:?}"));
            }
            i += 1;
            words.push(chars[start..i].iter().collect());
        } else if c == '(' || c == ')' || c == '|' {
            words.push(c.to_string());
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()|\"".contains(chars[i]) {
                i += 1;
            }
            words.push(chars[start..i].iter().collect());
        }
    }
    Ok(words)
}

fn parse_path(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses words into a pipeline; stops at an unmatched `)` (returned as the rest).
fn parse_pipeline(words: &[String]) -> Result<(Pipeline, &[String]), String> {
    let mut pipeline = Vec::new();
    let mut command = Vec::new();
    let mut rest = words;
    while let Some((word, tail)) = rest.split_first() {
        match word.as_str() {
            ")" => break,
            "|" => {
                if command.is_empty() {
                    return Err(format!("empty command in {words:?}"));
                }
                pipeline.push(std::mem::take(&mut command));
                rest = tail;
                continue;
            }
            "(" => {
                let (sub, after) = parse_pipeline(tail)?;
                match after.split_first() {
                    Some((close, after)) if close == ")" => {
                        command.push(Arg::Sub(sub));
                        rest = after;
                        continue;
                    }
                    _ => return Err(format!("unclosed ( in {words:?}")),
                }
            }
            _ => {}
        }
        let arg = if word.starts_with('"') {
            Arg::Literal(Value::String(
                serde_json::from_str(word).map_err(|e| format!("bad string {word}: {e}"))?,
            ))
        } else if let Some(path) = word.strip_prefix('$') {
            let (name, path) = path.split_once('.').unwrap_or((path, ""));
            Arg::Var(name.to_owned(), parse_path(path))
        } else if word.starts_with('.') {
            Arg::Field(parse_path(word))
        } else if let Ok(n) = word.parse::<f64>() {
            Arg::Literal(Value::from(n))
        } else if word == "true" || word == "false" {
            Arg::Literal(Value::Bool(word == "true"))
        } else if word == "nil" {
            Arg::Literal(Value::Null)
        } else {
            Arg::Function(word.clone())
        };
        command.push(arg);
        rest = tail;
    }
    if !command.is_empty() {
        pipeline.push(command);
    }
    if pipeline.is_empty() {
        return Err(format!("empty pipeline in {words:?}"));
    }
    Ok((pipeline, rest))
}

fn parse_full_pipeline(text: &str) -> Result<Pipeline, String> {
    let words = lex(text)?;
    let (pipeline, rest) = parse_pipeline(&words)?;
    if rest.is_empty() {
        Ok(pipeline)
    } else {
        Err(format!("unexpected {rest:?} in {text:?}"))
    }
}

/// What ended a run of nodes.
#[derive(Debug, PartialEq)]
enum Stop {
    End,
    Else,
    ElseIf(String),
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    defines: Vec<(String, Vec<Node>)>,
}

impl Parser<'_> {
    /// The rest of an `if` whose condition is parsed: its branch, and `else`, `else if …`
    /// (one nested `if` sharing the `end`) or `end`.
    fn if_chain(&mut self, action: &str, cond: Pipeline) -> Result<Node, String> {
        let (then, stop) = self.nodes()?;
        let otherwise = match stop {
            Some(Stop::End) => Vec::new(),
            Some(Stop::Else) => match self.nodes()? {
                (nodes, Some(Stop::End)) => nodes,
                _ => return Err(format!("{{{{ {action} }}}}: else without end")),
            },
            Some(Stop::ElseIf(next)) => {
                let cond = parse_full_pipeline(&next)?;
                vec![self.if_chain(action, cond)?]
            }
            None => return Err(format!("{{{{ {action} }}}} has no end")),
        };
        Ok(Node::If(cond, then, otherwise))
    }

    /// Parses nodes until `end`, `else` or `else if` (returned) or the end of input (`None`).
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<Stop>), String> {
        let mut nodes = Vec::new();
        while self.at < self.tokens.len() {
            let token = self.tokens[self.at].clone();
            self.at += 1;
            let action = match token {
                Token::Text(text) => {
                    if !text.is_empty() {
                        nodes.push(Node::Text(text));
                    }
                    continue;
                }
                Token::Action(action) => action,
            };
            if action.starts_with("/*") && action.ends_with("*/") {
                continue;
            }
            let (keyword, rest) = action
                .split_once(char::is_whitespace)
                .map_or((action.as_str(), ""), |(k, r)| (k, r.trim()));
            match keyword {
                "end" => return Ok((nodes, Some(Stop::End))),
                "else" if rest.is_empty() => return Ok((nodes, Some(Stop::Else))),
                "else" => match rest.strip_prefix("if ") {
                    Some(cond) => return Ok((nodes, Some(Stop::ElseIf(cond.to_owned())))),
                    None => return Err(format!("unsupported {{{{ {action} }}}}")),
                },
                "if" => {
                    let cond = parse_full_pipeline(rest)?;
                    nodes.push(self.if_chain(&action, cond)?);
                }
                "range" | "with" => {
                    let (var, pipeline_text) = match rest.split_once(":=") {
                        Some((var, p)) if var.trim().starts_with('$') && !var.contains(',') => {
                            (Some(var.trim()[1..].to_owned()), p.trim())
                        }
                        Some(_) => return Err(format!("unsupported {{{{ {action} }}}}")),
                        None => (None, rest),
                    };
                    let pipeline = parse_full_pipeline(pipeline_text)?;
                    let (body, stop) = self.nodes()?;
                    if stop != Some(Stop::End) {
                        return Err(format!("{{{{ {action} }}}}: else or no end"));
                    }
                    nodes.push(match keyword {
                        "range" => Node::Range(var, pipeline, body),
                        _ if var.is_none() => Node::With(pipeline, body),
                        _ => return Err(format!("unsupported {{{{ {action} }}}}")),
                    });
                }
                "define" => {
                    let name: String = serde_json::from_str(rest)
                        .map_err(|e| format!("{{{{ {action} }}}}: {e}"))?;
                    let (body, stop) = self.nodes()?;
                    if stop != Some(Stop::End) {
                        return Err(format!("{{{{ {action} }}}} has no end"));
                    }
                    self.defines.push((name, body));
                }
                "template" | "block" | "break" | "continue" => {
                    return Err(format!("unsupported {{{{ {action} }}}}"));
                }
                _ => {
                    let words = lex(&action)?;
                    let assign = match words.get(1).map(String::as_str) {
                        Some(op @ (":=" | "=")) if words[0].starts_with('$') => {
                            Some((words[0][1..].to_owned(), op == ":="))
                        }
                        _ => None,
                    };
                    let words = if assign.is_some() {
                        &words[2..]
                    } else {
                        &words[..]
                    };
                    let (pipeline, rest) = parse_pipeline(words)?;
                    if !rest.is_empty() {
                        return Err(format!("unexpected {rest:?} in {action:?}"));
                    }
                    nodes.push(Node::Action(assign, pipeline));
                }
            }
        }
        Ok((nodes, None))
    }
}

impl Templates {
    /// Parses `(name, text)` files; each file is a template under its name, and each of its
    /// defines one under the define's name.
    pub fn parse<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut named = BTreeMap::new();
        for (name, text) in files {
            let tokens = tokenize(text).map_err(|e| format!("{name}: {e}"))?;
            let mut parser = Parser {
                tokens: &tokens,
                at: 0,
                defines: Vec::new(),
            };
            let nodes = match parser.nodes() {
                Ok((nodes, None)) => nodes,
                Ok((_, Some(stop))) => return Err(format!("{name}: unexpected {stop:?}")),
                Err(e) => return Err(format!("{name}: {e}")),
            };
            named.insert(name.to_owned(), nodes);
            named.extend(parser.defines);
        }
        Ok(Self { named })
    }

    /// Renders the template `name` with `dot` as `.` and `$`.
    pub fn render(&self, name: &str, dot: &Value) -> Result<String, String> {
        let nodes = self
            .named
            .get(name)
            .ok_or_else(|| format!("no template {name:?}"))?;
        let mut exec = Exec {
            templates: self,
            vars: vec![(String::new(), dot.clone())],
            depth: 0,
        };
        let mut out = String::new();
        exec.nodes(nodes, dot, &mut out)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(out)
    }
}

struct Exec<'a> {
    templates: &'a Templates,
    vars: Vec<(String, Value)>,
    depth: usize,
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
        let scope = self.vars.len();
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Action(None, pipeline) => {
                    let value = self.pipeline(pipeline, dot)?;
                    out.push_str(&text_of(&value));
                }
                Node::Action(Some((name, declare)), pipeline) => {
                    let value = self.pipeline(pipeline, dot)?;
                    if *declare {
                        self.vars.push((name.clone(), value));
                    } else {
                        let slot = self
                            .vars
                            .iter_mut()
                            .rev()
                            .find(|(n, _)| n == name)
                            .ok_or_else(|| format!("assignment to undeclared ${name}"))?;
                        slot.1 = value;
                    }
                }
                Node::If(cond, then, otherwise) => {
                    let branch = if truthy(&self.pipeline(cond, dot)?) {
                        then
                    } else {
                        otherwise
                    };
                    self.nodes(branch, dot, out)?;
                }
                Node::With(pipeline, body) => {
                    let value = self.pipeline(pipeline, dot)?;
                    if truthy(&value) {
                        self.nodes(body, &value, out)?;
                    }
                }
                Node::Range(var, pipeline, body) => {
                    let items = match self.pipeline(pipeline, dot)? {
                        Value::Array(items) => items,
                        Value::Null => Vec::new(),
                        other => return Err(format!("range over {other}")),
                    };
                    for item in items {
                        let mark = self.vars.len();
                        if let Some(var) = var {
                            self.vars.push((var.clone(), item.clone()));
                        }
                        self.nodes(body, &item, out)?;
                        self.vars.truncate(mark);
                    }
                }
            }
        }
        self.vars.truncate(scope);
        Ok(())
    }

    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut piped = None;
        for command in pipeline {
            piped = Some(self.command(command, dot, piped.take())?);
        }
        piped.ok_or_else(|| "empty pipeline".to_owned())
    }

    fn command(
        &mut self,
        command: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, String> {
        match command.split_first() {
            Some((Arg::Function(name), args)) => {
                let mut values = args
                    .iter()
                    .map(|a| self.arg(a, dot))
                    .collect::<Result<Vec<_>, _>>()?;
                values.extend(piped);
                self.call(name, values)
            }
            Some((arg, [])) if piped.is_none() => self.arg(arg, dot),
            _ => Err(format!("cannot evaluate {command:?}")),
        }
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, String> {
        match arg {
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Field(path) => field(dot, path),
            Arg::Var(name, path) => {
                let value = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable ${name}"))?;
                field(&value, path)
            }
            Arg::Sub(pipeline) => self.pipeline(pipeline, dot),
            Arg::Function(name) => self.call(name, Vec::new()),
        }
    }

    /// The functions: include, toYaml, toJson, nindent, indent, quote, default, required,
    /// trunc, trimSuffix, contains, printf, print, sha256sum, eq, ne, and, or, not, ternary,
    /// list, dict, join, index.
    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{name} takes {n} arguments, got {}", args.len()))
            }
        };
        let string = |v: &Value| text_of(v);
        let int = |v: &Value| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
                .ok_or_else(|| format!("{name}: {v} is not a whole number"))
        };
        Ok(match name {
            "include" => {
                arity(2)?;
                let template = string(&args[0]);
                if self.depth > 32 {
                    return Err("include nested too deep".into());
                }
                let nodes = self
                    .templates
                    .named
                    .get(&template)
                    .ok_or_else(|| format!("include of unknown template {template:?}"))?;
                let mut inner = Exec {
                    templates: self.templates,
                    vars: vec![(String::new(), args[1].clone())],
                    depth: self.depth + 1,
                };
                let mut out = String::new();
                inner
                    .nodes(nodes, &args[1], &mut out)
                    .map_err(|e| format!("in {template:?}: {e}"))?;
                Value::String(out)
            }
            "toYaml" => {
                arity(1)?;
                Value::String(to_yaml(&args[0])?)
            }
            "toJson" => {
                arity(1)?;
                Value::String(serde_json::to_string(&args[0]).map_err(|e| e.to_string())?)
            }
            "nindent" | "indent" => {
                arity(2)?;
                let pad = " ".repeat(usize::try_from(int(&args[0])?).map_err(|e| e.to_string())?);
                let body = string(&args[1])
                    .split('\n')
                    .map(|l| format!("{pad}{l}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                Value::String(if name == "nindent" {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            "quote" => Value::String(
                args.iter()
                    .map(|a| format!("{:?}", string(a)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "default" => {
                arity(2)?;
                if truthy(&args[1]) {
                    args[1].clone()
                } else {
                    args[0].clone()
                }
            }
            "required" => {
                arity(2)?;
                match &args[1] {
                    Value::Null => return Err(format!("required: {}", string(&args[0]))),
                    Value::String(s) if s.is_empty() => {
                        return Err(format!("required: {}", string(&args[0])));
                    }
                    v => v.clone(),
                }
            }
            "trunc" => {
                arity(2)?;
                let n = usize::try_from(int(&args[0])?).map_err(|e| e.to_string())?;
                Value::String(string(&args[1]).chars().take(n).collect())
            }
            "trimSuffix" => {
                arity(2)?;
                let s = string(&args[1]);
                Value::String(s.strip_suffix(&string(&args[0])).unwrap_or(&s).to_owned())
            }
            "contains" => {
                arity(2)?;
                Value::Bool(string(&args[1]).contains(&string(&args[0])))
            }
            "printf" => {
                let (format, rest) = args
                    .split_first()
                    .ok_or_else(|| "printf without a format".to_owned())?;
                Value::String(printf(&string(format), rest)?)
            }
            "print" => Value::String(args.iter().map(string).collect()),
            "sha256sum" => {
                arity(1)?;
                let digest = Sha256::digest(string(&args[0]).as_bytes());
                let mut hex = String::new();
                for byte in digest {
                    let _ = write!(hex, "{byte:02x}");
                }
                Value::String(hex)
            }
            "eq" | "ne" => {
                let (first, rest) = args
                    .split_first()
                    .ok_or_else(|| format!("{name} without arguments"))?;
                let equal = rest.iter().any(|a| a == first);
                Value::Bool(equal == (name == "eq"))
            }
            "and" => args
                .iter()
                .find(|a| !truthy(a))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "or" => args
                .iter()
                .find(|a| truthy(a))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "not" => {
                arity(1)?;
                Value::Bool(!truthy(&args[0]))
            }
            "ternary" => {
                arity(3)?;
                if truthy(&args[2]) {
                    args[0].clone()
                } else {
                    args[1].clone()
                }
            }
            "list" => Value::Array(args),
            "dict" => {
                if !args.len().is_multiple_of(2) {
                    return Err("dict takes key/value pairs".into());
                }
                let mut map = Map::new();
                for pair in args.chunks(2) {
                    map.insert(string(&pair[0]), pair[1].clone());
                }
                Value::Object(map)
            }
            "join" => {
                arity(2)?;
                let items = args[1]
                    .as_array()
                    .ok_or_else(|| format!("join of {}", args[1]))?;
                Value::String(
                    items
                        .iter()
                        .map(string)
                        .collect::<Vec<_>>()
                        .join(&string(&args[0])),
                )
            }
            "index" => {
                let (first, keys) = args
                    .split_first()
                    .ok_or_else(|| "index without arguments".to_owned())?;
                let mut value = first.clone();
                for key in keys {
                    value = match (&value, key) {
                        (Value::Object(map), key) => {
                            map.get(&string(key)).cloned().unwrap_or(Value::Null)
                        }
                        (Value::Array(items), key) => {
                            let i = usize::try_from(int(key)?).map_err(|e| e.to_string())?;
                            items.get(i).cloned().ok_or("index out of range")?
                        }
                        (other, _) => return Err(format!("index of {other}")),
                    };
                }
                value
            }
            other => return Err(format!("unsupported function {other:?}")),
        })
    }
}

/// `.a.b` of a value: a missing key is nil, a field of nil is an error (as in Helm).
fn field(value: &Value, path: &[String]) -> Result<Value, String> {
    let mut current = value.clone();
    for (i, key) in path.iter().enumerate() {
        current = match current {
            Value::Object(mut map) => map.remove(key).unwrap_or(Value::Null),
            Value::Null => {
                return Err(format!("nil pointer evaluating .{}", path[..=i].join(".")));
            }
            other => return Err(format!("can't evaluate field {key} in {other}")),
        };
    }
    Ok(current)
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

/// A value as `{{ }}` prints it (`%v`): strings bare, whole numbers without a fraction, nil
/// as nothing (Helm replaces `<no value>` with an empty string).
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

fn printf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next();
        if verb == Some('%') {
            out.push('%');
            continue;
        }
        let arg = args
            .next()
            .ok_or_else(|| format!("printf {format:?}: too few arguments"))?;
        match (verb, arg) {
            (Some('s' | 'v'), arg) => out.push_str(&text_of(arg)),
            // Helm's numbers are float64: %d prints `%!d(float64=…)` there.
            (Some('d'), Value::Number(n)) if n.is_i64() || n.is_u64() => {
                out.push_str(&n.to_string());
            }
            (verb, arg) => {
                return Err(format!(
                    "printf {format:?}: %{verb:?} of {arg} misprints in Helm"
                ));
            }
        }
    }
    if args.next().is_some() {
        return Err(format!("printf {format:?}: too many arguments"));
    }
    Ok(out)
}

/// `toYaml`: block-style YAML without the document marker or a trailing newline.
fn to_yaml(value: &Value) -> Result<String, String> {
    fn convert(value: &Value) -> yaml_rust2::Yaml {
        use yaml_rust2::Yaml;
        match value {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Yaml::Integer(f as i64),
                _ => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            Value::Object(map) => Yaml::Hash(
                map.iter()
                    .map(|(k, v)| (Yaml::String(k.clone()), convert(v)))
                    .collect(),
            ),
        }
    }
    let mut out = String::new();
    yaml_rust2::YamlEmitter::new(&mut out)
        .dump(&convert(value))
        .map_err(|e| format!("toYaml: {e:?}"))?;
    Ok(out
        .strip_prefix("---\n")
        .or_else(|| out.strip_prefix("---"))
        .unwrap_or(&out)
        .trim()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, dot: &Value) -> Result<String, String> {
        Templates::parse([("t", text)])?.render("t", dot)
    }

    #[test]
    fn renders_trimming_conditionals_ranges_includes_and_pipelines() {
        let dot =
            serde_json::json!({"Values": {"a": "v\"q", "n": 9464.0, "off": "", "m": {"k": 1.0}}});
        let text = r#"{{- define "inc" -}}
[{{ .who }}]
{{- end -}}
k = {{ .Values.a | toJson }}
{{- if .Values.off }}
never
{{- else }}
p = {{ printf "0.0.0.0:%v" .Values.n | toJson }}
{{- end }}
{{- range $name := list "x" "y" }}
{{- $c := index $.Values "m" }}
r = {{ $name }}{{ $c.k }} {{ include "inc" (dict "who" $name) }}
{{- end }}
{{- with .Values.m }}
m:{{- toYaml . | nindent 2 }}
{{- end }}
{{- $v := "a" }}{{ if eq .Values.n 1.0 }}{{ else if .Values.off }}{{ else if .Values.n }}{{ $v = "b" }}{{ else }}{{ $v = "c" }}{{ end }}
v = {{ $v | quote }} {{ ternary "t" "f" (eq .Values.off "") }}"#;
        let out = render(text, &dot).unwrap();
        assert_eq!(
            out,
            "k = \"v\\\"q\"\np = \"0.0.0.0:9464\"\nr = x1 [x]\nr = y1 [y]\nm:\n  k: 1\nv = \"b\" t"
        );
    }

    #[test]
    fn refuses_what_helm_would_refuse_or_it_does_not_know() {
        let dot = serde_json::json!({"Values": {"a": 1.0, "e": ""}});
        for (text, needle) in [
            ("{{ .Values.zz.y }}", "nil pointer"),
            ("{{ .Values.a | b64enc }}", "unsupported function"),
            ("{{ template \"x\" . }}", "unsupported"),
            ("{{ include \"y\" . }}", "unknown template"),
            ("{{ required \"need e\" .Values.e }}", "need e"),
            ("{{ printf \"%d\" .Values.a }}", "misprints"),
            ("{{ if .Values.a }}", "no end"),
        ] {
            let err = render(text, &dot).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
