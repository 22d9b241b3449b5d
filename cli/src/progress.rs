//! Progress of long operations (an Organization's sweep, `doctor`), on standard error:
//! one line rewritten in place on a terminal, nothing at all when standard error is not
//! one (piped, redirected to a file, CI), so scripts and logs get the results only.
//! `NO_COLOR`-style opt-out: `CUTOFF_NO_PROGRESS` set to anything silences it on a
//! terminal too.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};

/// A progress line; `update` and `finish` do nothing when it is off.
pub struct Progress {
    enabled: bool,
    /// Characters of the line on screen, to blank what a shorter one leaves.
    shown: RefCell<usize>,
}

impl Progress {
    /// On when standard error is a terminal and `CUTOFF_NO_PROGRESS` is unset.
    pub fn on_terminal() -> Self {
        let enabled =
            std::io::stderr().is_terminal() && std::env::var_os("CUTOFF_NO_PROGRESS").is_none();
        Self {
            enabled,
            shown: RefCell::new(0),
        }
    }

    /// Replaces the line with `text` (cut to 100 characters: one terminal line).
    pub fn update(&self, text: &str) {
        if !self.enabled {
            return;
        }
        let text: String = text.chars().take(100).collect();
        let width = text.chars().count();
        let mut shown = self.shown.borrow_mut();
        let pad = shown.saturating_sub(width);
        // A failed write to the terminal is no reason to stop the operation.
        let _ = write!(std::io::stderr().lock(), "\r{text}{:pad$}", "");
        *shown = width;
    }

    /// Clears the line, so the results start on a clean one.
    pub fn finish(&self) {
        if !self.enabled {
            return;
        }
        let mut shown = self.shown.borrow_mut();
        if *shown > 0 {
            let _ = write!(
                std::io::stderr().lock(),
                "\r{:width$}\r",
                "",
                width = *shown
            );
            *shown = 0;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
