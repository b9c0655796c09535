//! The host menu: the only user of dialoguer. It owns the cursor (shown
//! again after every prompt) and makes sure a menu is only drawn on a real
//! terminal (FuzzySelect would redraw in a hot loop on anything else).
#![forbid(unsafe_code)]

use std::io;

use console::Term;
use dialoguer::theme::ColorfulTheme;
use dialoguer::FuzzySelect;

use crate::config::Host;

pub enum Choice {
    Host(usize),
    Quit,
    /// Ctrl-C or a signal interrupted the prompt: the caller decides.
    Interrupted,
}

const QUIT_LABEL: &str = "quit — leave Gatehouse";

/// One line per host: name, padded, then the description. Labels must be
/// unique (FuzzySelect returns the first equal label); host names are.
pub fn labels(hosts: &[&Host]) -> Vec<String> {
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let mut items: Vec<String> = hosts
        .iter()
        .map(|h| {
            if h.description.is_empty() {
                h.name.clone()
            } else {
                format!("{:<width$}  {}", h.name, h.description)
            }
        })
        .collect();
    items.push(QUIT_LABEL.to_string());
    items
}

pub fn choose(items: &[String], user: &str) -> io::Result<Choice> {
    let term = Term::stdout();
    let rows = term.size().0.max(6) as usize;
    let result = FuzzySelect::with_theme(&ColorfulTheme::default())
        .with_prompt(format!(
            "{user}@gatehouse: pick a host (type to filter, Esc to quit)"
        ))
        .items(items)
        .default(0)
        .max_length(rows.saturating_sub(3).max(3))
        .clear(true)
        .interact_on_opt(&term);
    let _ = term.show_cursor();
    match result {
        Ok(Some(i)) if i + 1 == items.len() => Ok(Choice::Quit),
        Ok(Some(i)) => Ok(Choice::Host(i)),
        Ok(None) => Ok(Choice::Quit),
        Err(dialoguer::Error::IO(e)) if e.kind() == io::ErrorKind::Interrupted => {
            Ok(Choice::Interrupted)
        }
        Err(dialoguer::Error::IO(e)) => Err(e),
    }
}
