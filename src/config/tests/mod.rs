//! Table-driven tests of werf.yaml parsing: accepted configs and their values
//! (`valid`, `images`), every rejection with its exact message and file line (`errors`),
//! and Sprig's date functions (`dates`).

mod dates;
mod errors;
mod images;
mod templates;
mod valid;

/// The smallest meta document; image bodies appended after it start at line 4.
const META: &str = "configVersion: 1\nproject: demo\n";

fn with_meta(body: &str) -> String {
    format!("{META}---\n{body}")
}
