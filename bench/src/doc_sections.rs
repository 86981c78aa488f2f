//! docs/benchmarks.md holds the sections a full run generates and sections written by hand beside
//! them (what a feature costs where the driver does not measure it, figures from other scripts).
//! A full run rewrites the page; [`keep_written`] carries the hand-written sections over, each
//! after the section it followed before, so that regenerating the figures loses no prose.

/// A `##` or `###` heading and its text up to the next heading of either level.
#[derive(Debug, Clone, Copy)]
struct Part<'a> {
    heading: &'a str,
    level: usize,
    text: &'a str,
}

fn heading_level(line: &str) -> Option<usize> {
    if line.starts_with("## ") {
        Some(2)
    } else if line.starts_with("### ") {
        Some(3)
    } else {
        None
    }
}

/// The text before the first heading, and the parts after it. Lines inside fenced code blocks are
/// never headings.
fn split(doc: &str) -> (&str, Vec<Part<'_>>) {
    let mut starts = Vec::new();
    let mut offset = 0;
    let mut fenced = false;
    for line in doc.split_inclusive('\n') {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if let Some(level) = heading_level(line).filter(|_| !fenced) {
            starts.push((offset, level));
        }
        offset += line.len();
    }
    let preamble_end = starts.first().map_or(doc.len(), |&(start, _)| start);
    let parts = starts
        .iter()
        .enumerate()
        .map(|(index, &(start, level))| {
            let end = starts.get(index + 1).map_or(doc.len(), |&(next, _)| next);
            let text = &doc[start..end];
            let heading = text.lines().next().unwrap_or_default().trim_end();
            Part {
                heading,
                level,
                text,
            }
        })
        .collect();
    (&doc[..preamble_end], parts)
}

/// `generated` with every section of `previous` whose heading it lacks, each placed after the
/// section that preceded it in `previous` (past that section's own subsections), or at the start
/// when nothing preceded it.
pub fn keep_written(previous: &str, generated: &str) -> String {
    let (preamble, mut out) = split(generated);
    let generated_headings: Vec<&str> = out.iter().map(|part| part.heading).collect();
    let (_, old) = split(previous);
    for (index, part) in old.iter().enumerate() {
        if generated_headings.contains(&part.heading) {
            continue;
        }
        let at = match index.checked_sub(1).map(|before| old[before].heading) {
            Some(before) => match out.iter().position(|placed| placed.heading == before) {
                Some(found) => {
                    let level = out[found].level;
                    let mut at = found + 1;
                    while at < out.len()
                        && out[at].level > level
                        && generated_headings.contains(&out[at].heading)
                    {
                        at += 1;
                    }
                    at
                }
                None => out.len(),
            },
            None => 0,
        };
        out.insert(at, *part);
    }
    let mut doc = preamble.to_owned();
    for part in out {
        if !doc.is_empty() && !doc.ends_with("\n\n") {
            doc.push('\n');
        }
        doc.push_str(part.text);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_sections_follow_the_section_they_followed() {
        let previous = "# Page\n\nintro\n\n## Figures\n\nold table\n\n### Events\n\nwritten\n\n\
                        ## Critical path\n\nold\n\n## Idle readers\n\nwritten too\n\n## Where\n\nend\n";
        let generated = "# Page\n\nnew intro\n\n## Figures\n\nnew table\n\n## Critical path\n\nnew\n\n\
                         ## Where\n\nend\n";
        let doc = keep_written(previous, generated);
        assert_eq!(
            doc,
            "# Page\n\nnew intro\n\n## Figures\n\nnew table\n\n### Events\n\nwritten\n\n\
             ## Critical path\n\nnew\n\n## Idle readers\n\nwritten too\n\n## Where\n\nend\n"
        );
    }

    #[test]
    fn a_written_subsection_goes_after_the_generated_ones() {
        let previous = "## Units\n\na\n\n### Generated\n\nb\n\n### Written\n\nc\n";
        let generated = "## Units\n\nA\n\n### Generated\n\nB\n";
        assert_eq!(
            keep_written(previous, generated),
            "## Units\n\nA\n\n### Generated\n\nB\n\n### Written\n\nc\n"
        );
    }

    #[test]
    fn headings_in_code_blocks_are_text() {
        let previous = "## A\n\n```\n## not a heading\n```\n\n## Written\n\nw\n";
        let generated = "## A\n\nnew\n";
        assert_eq!(
            keep_written(previous, generated),
            "## A\n\nnew\n\n## Written\n\nw\n"
        );
    }

    #[test]
    fn a_page_without_written_sections_is_the_generated_one() {
        let generated = "# P\n\n## A\n\na\n";
        assert_eq!(keep_written(generated, generated), generated);
        assert_eq!(keep_written("", generated), generated);
    }
}
