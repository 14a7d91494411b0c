//! Progress bars for long commands. indicatif draws them on stderr only when it is a terminal, so
//! scripts and tests see just the summary line.

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
