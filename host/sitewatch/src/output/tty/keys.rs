//! Keys for the live display, read from stdin when it is a terminal. The terminal is put in raw
//! input mode for as long as the reader runs (output processing and Ctrl-C's signal kept), and
//! restored when it stops: the reader polls, so it notices the stop within a tenth of a second
//! instead of leaving the terminal raw behind a blocked read.

use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// A key the display acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Escape,
    Backspace,
    Up,
    Down,
    PageUp,
    PageDown,
}

/// The running reader; dropping it stops the thread and restores the terminal.
pub struct KeyReader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeyReader {
    /// Starts reading keys into `tx`, or `None` when stdin is not a terminal (then the display
    /// just runs).
    pub fn start(tx: mpsc::Sender<Key>) -> Option<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let original = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = original.clone();
        termios::cfmakeraw(&mut raw);
        // Keep what the display and the user rely on: output processing (newlines) and Ctrl-C.
        raw.output_flags = original.output_flags;
        raw.local_flags |= LocalFlags::ISIG;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sitewatch-keys".into())
            .spawn(move || read_keys(&flag, &tx, &original))
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for KeyReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_keys(stop: &AtomicBool, tx: &mpsc::Sender<Key>, original: &Termios) {
    let stdin = std::io::stdin();
    let mut parser = Parser::default();
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, 100u16) {
            Ok(0) => {
                // A lone Escape is a key once nothing follows it.
                if let Some(k) = parser.timeout() {
                    let _ = tx.send(k);
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let mut buf = [0u8; 64];
        let n = match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut keys = Vec::new();
        for b in &buf[..n] {
            parser.byte(*b, &mut keys);
        }
        for k in keys {
            if tx.send(k).is_err() {
                break;
            }
        }
    }
    let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, original);
}

/// Turns bytes into keys: printable characters, Enter, Backspace, and the escape sequences of
/// the arrow and page keys.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Vec<u8>,
}

impl Parser {
    /// Reads one byte; the keys it completes go to `out`.
    pub fn byte(&mut self, b: u8, out: &mut Vec<Key>) {
        if self.pending == [0x1b] && b != b'[' {
            // Escape, then another key typed quickly (not a control sequence).
            self.pending.clear();
            out.push(Key::Escape);
        }
        if !self.pending.is_empty() {
            self.pending.push(b);
            match self.pending.as_slice() {
                // A control sequence has started, or is in its parameters: wait for its end.
                [0x1b, b'['] => return,
                [0x1b, b'[', b'0'..=b'9', ..] if b != b'~' && !b.is_ascii_alphabetic() => return,
                _ => {}
            }
            out.extend(match self.pending.as_slice() {
                [0x1b, b'[', b'A'] => Some(Key::Up),
                [0x1b, b'[', b'B'] => Some(Key::Down),
                [0x1b, b'[', b'5', b'~'] => Some(Key::PageUp),
                [0x1b, b'[', b'6', b'~'] => Some(Key::PageDown),
                _ => None,
            });
            self.pending.clear();
            return;
        }
        out.extend(match b {
            0x1b => {
                self.pending.push(b);
                None
            }
            b'\r' | b'\n' => Some(Key::Enter),
            0x7f | 0x08 => Some(Key::Backspace),
            0x20..=0x7e => Some(Key::Char(b as char)),
            _ => None,
        });
    }

    /// Nothing came after an Escape: it was the Escape key.
    pub fn timeout(&mut self) -> Option<Key> {
        let lone = self.pending == [0x1b];
        self.pending.clear();
        lone.then_some(Key::Escape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for b in bytes {
            p.byte(*b, &mut out);
        }
        out.extend(p.timeout());
        out
    }

    #[test]
    fn bytes_become_keys() {
        assert_eq!(
            keys(b"q/ab\r\x7f"),
            [
                Key::Char('q'),
                Key::Char('/'),
                Key::Char('a'),
                Key::Char('b'),
                Key::Enter,
                Key::Backspace
            ]
        );
        assert_eq!(
            keys(b"\x1b[A\x1b[B\x1b[5~\x1b[6~"),
            [Key::Up, Key::Down, Key::PageUp, Key::PageDown]
        );
        assert_eq!(keys(b"\x1b"), [Key::Escape]);
        assert_eq!(
            keys(b"\x1bs"),
            [Key::Escape, Key::Char('s')],
            "Escape then a key typed quickly"
        );
        assert_eq!(
            keys(b"\x1b[Cv"),
            [Key::Char('v')],
            "an unknown sequence is dropped"
        );
    }
}
