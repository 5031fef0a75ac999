//! Tokens of the scenario language: words, "quoted strings" with escapes, and generated
//! bytes (`@LEN` or `@LEN+OFFSET`: a slice of the endless pattern 0, 1, ..., 250, 0, ...,
//! which has NUL bytes and every other value).

pub(crate) fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(|p| u8::try_from(p % 251).unwrap()).collect()
}

/// Splits a line into tokens, each as bytes.
pub(crate) fn tokens(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'#' => break,
            b'"' => {
                let mut token = Vec::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err("unterminated string".into()),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let escaped = *bytes.get(i + 1).ok_or("dangling backslash")?;
                            i += 2;
                            match escaped {
                                b'n' => token.push(b'\n'),
                                b'r' => token.push(b'\r'),
                                b't' => token.push(b'\t'),
                                b'0' => token.push(0),
                                b'\\' => token.push(b'\\'),
                                b'"' => token.push(b'"'),
                                b'x' => {
                                    let hex = line.get(i..i + 2).ok_or("short \\x escape")?;
                                    token.push(
                                        u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?,
                                    );
                                    i += 2;
                                }
                                other => return Err(format!("unknown escape \\{}", other as char)),
                            }
                        }
                        Some(&b) => {
                            token.push(b);
                            i += 1;
                        }
                    }
                }
                out.push(token);
            }
            b'@' => {
                let end = line[i..].find([' ', '\t']).map_or(line.len(), |e| i + e);
                let spec = &line[i + 1..end];
                let (len, offset) = match spec.split_once('+') {
                    Some((len, offset)) => (len, offset),
                    None => (spec, "0"),
                };
                let len: usize = len.parse().map_err(|_| format!("bad @ length in {spec:?}"))?;
                let offset: usize =
                    offset.parse().map_err(|_| format!("bad @ offset in {spec:?}"))?;
                out.push(pattern(offset, len));
                i = end;
            }
            _ => {
                let end = line[i..].find([' ', '\t']).map_or(line.len(), |e| i + e);
                out.push(line.as_bytes()[i..end].to_vec());
                i = end;
            }
        }
    }
    Ok(out)
}

pub(crate) fn show(bytes: &[u8]) -> String {
    if bytes.len() > 80 {
        return format!("<{} bytes>", bytes.len());
    }
    format!("{:?}", String::from_utf8_lossy(bytes))
}
