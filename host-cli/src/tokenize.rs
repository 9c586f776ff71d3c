//! Text to token ids with a model's vocabulary: greedy longest match, left to right. Exact for
//! the character- and byte-level vocabularies tinylens trains; an approximation for BPE.

use anyhow::{bail, Result};

/// Splits `text` into ids of `vocab`, taking the longest matching token at each point.
/// Unknown text is an error naming the character and its position.
pub fn encode(vocab: &[String], text: &str) -> Result<Vec<u32>> {
    if text.is_empty() {
        bail!("the prompt has no tokens");
    }
    let mut ids = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let best = vocab
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.is_empty() && rest.starts_with(t.as_str()))
            .max_by_key(|(i, t)| (t.len(), std::cmp::Reverse(*i)));
        match best {
            Some((id, token)) => {
                ids.push(id as u32);
                rest = &rest[token.len()..];
            }
            None => {
                let at = text.len() - rest.len();
                let c = rest.chars().next().unwrap_or('?');
                bail!(
                    "the prompt has {c:?} at byte {at}, which is not in the model's vocabulary \
                     of {} tokens",
                    vocab.len()
                );
            }
        }
    }
    Ok(ids)
}

/// Joins the text of `ids`, writing unknown ids as `<id>`.
pub fn decode(vocab: &[String], ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| {
            vocab
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("<{i}>"))
        })
        .collect()
}

/// One token shown in a table: quoted text when there is a vocabulary, else `#id`.
pub fn show(vocab: Option<&[String]>, id: u32) -> String {
    match vocab.and_then(|v| v.get(id as usize)) {
        Some(t) => format!("{t:?}"),
        None => format!("#{id}"),
    }
}

/// Parses `1,2,3` (spaces allowed) into token ids.
pub fn parse_ids(list: &str) -> Result<Vec<u32>> {
    let ids = list
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("{s:?} in --tokens is not a token id"))
        })
        .collect::<Result<Vec<u32>>>()?;
    if ids.is_empty() {
        bail!("--tokens is empty");
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_and_errors() {
        let vocab: Vec<String> = ["a", "b", "ab", " "]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(encode(&vocab, "ab a").unwrap(), vec![2, 3, 0]);
        let err = encode(&vocab, "abc").unwrap_err().to_string();
        assert!(err.contains("'c' at byte 2"), "{err}");
        assert!(encode(&vocab, "").is_err());
        assert_eq!(decode(&vocab, &[2, 3, 9]), "ab <9>");
        assert_eq!(parse_ids("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_ids("1,x").is_err());
        assert!(parse_ids("").is_err());
    }
}
