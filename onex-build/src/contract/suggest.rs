//! "Did you mean": the closest valid spelling of a misspelt word.

/// The candidate closest to `word`, if one is close enough to be a likely
/// misspelling: equal ignoring case, `-`/`_` and spaces, or within an edit
/// distance of about a quarter of the word's length.
///
/// ```
/// use onex_build::contract::suggest::closest;
/// assert_eq!(closest("efect", ["effect", "compute"]), Some("effect"));
/// assert_eq!(closest("zzz", ["effect", "compute"]), None);
/// ```
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let norm = normalize(word);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = if normalize(candidate) == norm {
            0
        } else {
            strsim::damerau_levenshtein(&word.to_lowercase(), &candidate.to_lowercase())
        };
        let limit = (word.chars().count().max(candidate.chars().count()) / 4).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate, if any.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words between backticks in a serde message, e.g. the valid keys of
/// "unknown field `x`, expected one of `a`, `b`".
pub(crate) fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(closest("nmae", ["name", "node_type"]), Some("name"));
        assert_eq!(closest("Effect", ["effect", "compute"]), Some("effect"));
        assert_eq!(
            closest("nodetype", ["name", "node_type"]),
            Some("node_type")
        );
        assert_eq!(closest("x", ["name", "node_type"]), None);
        assert_eq!(closest("name", ["name"]), None);
    }

    #[test]
    fn backticks() {
        assert_eq!(
            backticked("unknown field `nmae`, expected one of `name`, `version`"),
            ["nmae", "name", "version"]
        );
    }
}
