//! Syntax checks shared by the configuration, the label grammar and the legacy importer.
//!
//! Each check returns `Err(reason)` with a reason fit for an operator; none echoes more than
//! the value it was given.

/// Largest vCPU count accepted anywhere (labels and limits), in thousandths.
pub(crate) const MAX_CPU_MILLIS: u32 = 1_024_000;
/// Largest memory accepted anywhere, in MiB (1 TiB).
pub(crate) const MAX_MEMORY_MIB: u32 = 1_048_576;

/// A tenant or registration name: `^[a-z][a-z0-9-]{0,30}$`.
pub(crate) fn name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = s.len() <= 31
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid name: 1-31 characters, a lowercase letter then lowercase letters, digits or `-`"
        ))
    }
}

/// A decimal with at most four integer digits and three decimals, no sign, no exponent,
/// no leading zeros; returns thousandths.
pub(crate) fn decimal_thousandths(s: &str) -> Result<u32, String> {
    let bad = || format!("`{s}` is not a decimal like 2, 0.5 or 2.0 (at most 3 decimals)");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || int.len() > 4 || (int.len() > 1 && int.starts_with('0')) {
        return Err(bad());
    }
    let mut value: u32 = int.parse::<u32>().map_err(|_| bad())? * 1000;
    if let Some(frac) = frac {
        if !digits(frac) || frac.len() > 3 {
            return Err(bad());
        }
        let scale = [100, 10, 1];
        for (digit, mul) in frac.bytes().zip(scale) {
            value += u32::from(digit - b'0') * mul;
        }
    }
    if value == 0 {
        return Err(format!("`{s}` must be greater than zero"));
    }
    Ok(value)
}

/// Converts a TOML number of vCPU or GiB into thousandths, with the same rules as labels.
pub(crate) fn number_thousandths(n: f64) -> Result<u32, String> {
    let scaled = n * 1000.0;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!("{n} must be a positive number"));
    }
    if (scaled - scaled.round()).abs() > 1e-6 || scaled > 9_999_999.0 {
        return Err(format!(
            "{n} must have at most 3 decimals and be below 10000"
        ));
    }
    // In range and integral: the cast is exact.
    Ok(scaled.round() as u32)
}

/// vCPU thousandths within the global bound.
pub(crate) fn cpu_millis(thousandths: u32) -> Result<u32, String> {
    if thousandths > MAX_CPU_MILLIS {
        return Err(format!("at most {} vCPU", MAX_CPU_MILLIS / 1000));
    }
    Ok(thousandths)
}

/// GiB thousandths to MiB (rounded up to a whole MiB) within the global bound.
pub(crate) fn memory_mib(thousandths: u32) -> Result<u32, String> {
    let mib = (u64::from(thousandths) * 1024).div_ceil(1000);
    match u32::try_from(mib) {
        Ok(mib) if mib <= MAX_MEMORY_MIB => Ok(mib),
        _ => Err(format!("at most {} GiB", MAX_MEMORY_MIB / 1024)),
    }
}

fn chars_ok(s: &str, min: usize, max: usize, allowed: impl Fn(char) -> bool) -> bool {
    (min..=max).contains(&s.len()) && s.chars().all(allowed)
}

/// An Alibaba resource id body after `vsw-` / `sg-`: lowercase letters and digits.
pub(crate) fn alibaba_id_body(s: &str) -> Result<(), String> {
    if chars_ok(s, 1, 64, |c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        Ok(())
    } else {
        Err("an id is 1-64 lowercase letters and digits after the prefix".into())
    }
}

/// A full Alibaba id with its prefix, e.g. `vsw-bp1abc`.
pub(crate) fn alibaba_id(s: &str, prefix: &str) -> Result<(), String> {
    match s.strip_prefix(prefix) {
        Some(body) => alibaba_id_body(body),
        None => Err(format!("`{s}` must start with `{prefix}`")),
    }
}

/// An Azure subnet or GCP subnetwork name.
pub(crate) fn subnet_name(s: &str) -> Result<(), String> {
    let ok = chars_ok(s, 1, 80, |c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err("a subnet name is 1-80 letters, digits, `.`, `_` or `-`, starting with a letter or digit".into())
    }
}

/// An image tag (the part after `:`), as the OCI distribution spec defines it.
pub(crate) fn image_tag(s: &str) -> Result<(), String> {
    let ok = chars_ok(s, 1, 128, |c| {
        c.is_ascii_alphanumeric() || "._-".contains(c)
    }) && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(
            "an image tag is 1-128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
                .into(),
        )
    }
}

/// A full image reference `[registry/]path[:tag][@digest]`, checked loosely (no spaces,
/// lowercase repository path).
pub(crate) fn image_ref(s: &str) -> Result<(), String> {
    let bad = || format!("`{s}` is not an image reference like ghcr.io/org/image:tag");
    if s.is_empty() || s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let without_digest = s.split_once('@').map_or(s, |(r, _)| r);
    let (repo, tag) = split_image(without_digest);
    if repo.is_empty()
        || repo.starts_with('/')
        || repo.ends_with('/')
        || repo.contains("//")
        || !repo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
    {
        return Err(bad());
    }
    if let Some(tag) = tag {
        image_tag(tag).map_err(|r| format!("`{s}`: {r}"))?;
    }
    Ok(())
}

/// Splits `repo[:tag]`, telling a tag colon from a registry port colon.
pub(crate) fn split_image(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (s, None),
    }
}

/// An object-storage bucket name (OSS, S3, GCS, Azure container).
pub(crate) fn bucket(s: &str) -> Result<(), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if chars_ok(s, 3, 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
    }) && edge(s.chars().next())
        && edge(s.chars().last())
    {
        Ok(())
    } else {
        Err("a bucket name is 3-63 lowercase letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit".into())
    }
}

/// A runner label as GitHub accepts it: no whitespace or commas, 1-100 characters.
pub(crate) fn label(s: &str) -> Result<(), String> {
    if chars_ok(s, 1, 100, |c| c.is_ascii_graphic() && c != ',') {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a label: 1-100 visible ASCII characters without `,`"
        ))
    }
}

/// A charge label put on cloud instances for billing.
pub(crate) fn charge_label(s: &str) -> Result<(), String> {
    if chars_ok(s, 1, 63, |c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a charge label: 1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_label_grammar() {
        let cases: &[(&str, Option<u32>)] = &[
            ("2", Some(2000)),
            ("0.5", Some(500)),
            ("2.0", Some(2000)),
            ("0.125", Some(125)),
            ("9999.999", Some(9_999_999)),
            ("0", None),
            ("0.000", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("NaN", None),
            ("inf", None),
            (".5", None),
            ("2.", None),
            ("02", None),
            ("0.1234", None),
            ("10000", None),
            ("1 ", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(decimal_thousandths(input).ok(), *expected, "{input}");
        }
    }

    #[test]
    fn toml_numbers_convert_like_labels() {
        assert_eq!(number_thousandths(0.5), Ok(500));
        assert_eq!(number_thousandths(2.0), Ok(2000));
        assert!(number_thousandths(0.0).is_err());
        assert!(number_thousandths(-1.0).is_err());
        assert!(number_thousandths(f64::NAN).is_err());
        assert!(number_thousandths(0.0001).is_err());
        assert!(number_thousandths(1e9).is_err());
    }

    #[test]
    fn image_refs_accept_registries_with_ports_and_reject_junk() {
        for ok in [
            "ghcr.io/actions/actions-runner:latest",
            "localhost:5000/r:1.0",
            "ubuntu",
            "a/b@sha256:abc",
        ] {
            assert!(image_ref(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Ghcr.io/X", "a b", "a//b", "/a", "a:-bad"] {
            assert!(image_ref(bad).is_err(), "{bad}");
        }
        assert_eq!(split_image("localhost:5000/r"), ("localhost:5000/r", None));
        assert_eq!(
            split_image("localhost:5000/r:1"),
            ("localhost:5000/r", Some("1"))
        );
    }
}
