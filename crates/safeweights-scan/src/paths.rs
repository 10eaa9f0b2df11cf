//! Paths named by untrusted data (archive members, external-data
//! locations, tensor names, graph constants): whether they leave their folder.

/// Whether a tensor name looks like a path a tool could write to.
pub(crate) fn path_like_name(name: &str) -> bool {
    let n = name.replace('\\', "/");
    n.starts_with('/')
        || (n.len() >= 2 && n.as_bytes()[1] == b':' && n.as_bytes()[0].is_ascii_alphabetic())
        || n.split('/').any(|c| c == "..")
        || n.contains('\0')
}

/// Whether a relative path leaves its folder (absolute, drive, or `..` past the root).
pub(crate) fn path_escapes(loc: &str) -> bool {
    let l = loc.replace('\\', "/");
    if l.starts_with('/') || l.as_bytes().get(1) == Some(&b':') || l.contains('\0') {
        return true;
    }
    let mut depth: i64 = 0;
    for c in l.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// Whether a link at `name` pointing to `target` leaves the archive root.
pub(crate) fn path_escapes_from(name: &str, target: &str) -> bool {
    let t = target.replace('\\', "/");
    if t.starts_with('/') || t.as_bytes().get(1) == Some(&b':') {
        return true;
    }
    let dir = match name.rsplit_once('/') {
        Some((d, _)) => d.to_string(),
        None => String::new(),
    };
    let joined = if dir.is_empty() {
        t
    } else {
        format!("{dir}/{t}")
    };
    path_escapes(&joined)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert!(path_escapes("../x"));
        assert!(path_escapes("/etc/passwd"));
        assert!(path_escapes("a/../../x"));
        assert!(!path_escapes("weights.bin"));
        assert!(!path_escapes("sub/../w.bin"));
    }

    #[test]
    fn path_like_names() {
        assert!(path_like_name("../x"));
        assert!(path_like_name("C:\\x"));
        assert!(path_like_name("/abs"));
        assert!(!path_like_name("model.layers.0/attn"));
    }
}
