//! `validate FILE...`: the same validation admission uses, offline, one verdict per file.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::exit;
use crate::validate::{Hints, ScanType};

#[derive(Serialize)]
struct Line<'a> {
    path: &'a str,
    valid: bool,
    format: Option<&'a str>,
    scan_type: Option<&'a str>,
    target: Option<&'a str>,
    reason: Option<&'a str>,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

pub fn run(
    format: OutputFormat,
    scan_type: Option<&str>,
    target: Option<String>,
    accept_partial: bool,
    files: &[PathBuf],
) -> i32 {
    let scan_type = match scan_type.map(str::parse::<ScanType>).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hostedscan-agent: --scan-type: {e}");
            return exit::USAGE;
        }
    };
    let hints = Hints {
        scan_type,
        target,
        accept_partial,
    };
    let mut all_valid = true;
    for f in files {
        let path = f.display().to_string();
        let (valid, format_, st, tgt, reason, warnings, sha, size) =
            match crate::admit::inspect(f, &hints) {
                Ok(i) => match i.verdict {
                    Ok(r) => (
                        true,
                        Some(r.format.as_str()),
                        Some(r.scan_type.as_str()),
                        r.target,
                        None,
                        r.warnings,
                        Some(i.sha256),
                        Some(i.size),
                    ),
                    Err(rej) => (
                        false,
                        Some(rej.format.as_str()),
                        None,
                        None,
                        Some(rej.reason),
                        rej.warnings,
                        Some(i.sha256),
                        Some(i.size),
                    ),
                },
                Err(e) => (
                    false,
                    None,
                    None,
                    None,
                    Some(format!("cannot read it: {e}")),
                    vec![],
                    None,
                    None,
                ),
            };
        all_valid &= valid;
        match format {
            OutputFormat::Json => {
                let line = Line {
                    path: &path,
                    valid,
                    format: format_,
                    scan_type: st,
                    target: tgt.as_deref(),
                    reason: reason.as_deref(),
                    warnings: &warnings,
                    sha256: sha.as_deref(),
                    size,
                };
                println!("{}", serde_json::to_string(&line).unwrap_or_default());
            }
            OutputFormat::Text => {
                if valid {
                    println!(
                        "ok       {path}  {} {}{}",
                        format_.unwrap_or("-"),
                        st.unwrap_or("-"),
                        tgt.map(|t| format!(" target {t}")).unwrap_or_default()
                    );
                } else {
                    println!(
                        "INVALID  {path}  {}",
                        crate::report::one_line(&reason.unwrap_or_default())
                    );
                }
                for w in &warnings {
                    println!("         warning: {w}");
                }
            }
        }
    }
    if all_valid {
        exit::OK
    } else {
        exit::DATAERR
    }
}
