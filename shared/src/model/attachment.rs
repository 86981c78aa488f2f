//! What OpenAI's wires do with a user's file they have no part for: a text file is read into the
//! prompt, anything else becomes a note saying a file was attached, so one unsupported
//! attachment does not fail the whole request.

use super::data_url::DataUrl;

/// A media type's essence, lowercase and without parameters: `text/csv; charset=utf-8` is
/// `text/csv`.
pub(crate) fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The text of a text file sent inline, headed by its name when it has one; `None` for other
/// media types and for a payload that does not decode.
pub(crate) fn inline_text(
    data_url: &DataUrl<'_>,
    essence: &str,
    filename: Option<&str>,
) -> Option<String> {
    let is_text = essence.starts_with("text/")
        || matches!(
            essence,
            "application/json" | "application/xml" | "application/x-yaml" | "application/yaml"
        );
    if !is_text {
        return None;
    }
    let bytes = data_url.bytes()?;
    let text = String::from_utf8_lossy(&bytes);
    Some(match filename {
        Some(name) => format!("{name}:\n{text}"),
        None => text.into_owned(),
    })
}

/// The note that stands for a file the model cannot read; a file given by URL names the URL.
pub(crate) fn unreadable_note(data: &str, media_type: &str, filename: Option<&str>) -> String {
    let mut note = String::from("[Attached file");
    if let Some(name) = filename {
        note.push_str(&format!(" {name}"));
    }
    note.push_str(&format!(" ({media_type})"));
    if DataUrl::parse(data).is_none() {
        note.push_str(&format!(" at {data}"));
    }
    note.push_str(", which this model cannot read]");
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essences_drop_parameters_and_case() {
        assert_eq!(essence("Text/CSV; charset=utf-8"), "text/csv");
        assert_eq!(essence("image/png"), "image/png");
        assert_eq!(essence(""), "");
    }

    #[test]
    fn text_files_are_read_and_others_are_not() {
        let url = DataUrl::parse("data:text/plain;base64,aMOpbGxvCg==").expect("a data URL");
        assert_eq!(
            inline_text(&url, "text/plain", Some("notes.txt")).as_deref(),
            Some("notes.txt:\nhéllo\n")
        );
        let json = DataUrl::parse("data:application/json,%7B%7D").expect("a data URL");
        assert_eq!(
            inline_text(&json, "application/json", None).as_deref(),
            Some("{}")
        );
        let zip = DataUrl::parse("data:application/zip;base64,UEsDBA==").expect("a data URL");
        assert_eq!(inline_text(&zip, "application/zip", None), None);
        let broken = DataUrl::parse("data:text/plain;base64,!!").expect("a data URL");
        assert_eq!(inline_text(&broken, "text/plain", None), None);
    }

    #[test]
    fn notes_name_the_file_and_a_url() {
        assert_eq!(
            unreadable_note(
                "data:application/zip;base64,UEsDBA==",
                "application/zip",
                Some("x.zip")
            ),
            "[Attached file x.zip (application/zip), which this model cannot read]"
        );
        assert_eq!(
            unreadable_note("https://example.com/r.pdf", "application/pdf", None),
            "[Attached file (application/pdf) at https://example.com/r.pdf, which this model cannot read]"
        );
    }
}
