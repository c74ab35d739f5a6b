//! Where an execution driver's time comes from. The VM never reads a clock: its driver does,
//! through a [`Clock`], and hands `now` into every VM call.

use crate::asl::Millis;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn wall_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Real or virtual time.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// Wall-clock time: Wait states really wait.
    Real,
    /// Starts at `now` and jumps straight to the next timer whenever nothing else can
    /// happen, so Waits and retry backoffs take no real time (tests, `exec` by default).
    Virtual { now: Millis },
}

impl Clock {
    pub fn virtual_at_wall_time() -> Clock {
        Clock::Virtual { now: wall_millis() }
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::Real => wall_millis(),
            Clock::Virtual { now } => *now,
        }
    }

    /// Moves a virtual clock forward to `at` (never back); a real one moves by itself.
    pub fn advance_to(&mut self, at: Millis) {
        if let Clock::Virtual { now } = self {
            *now = (*now).max(at);
        }
    }

    pub fn is_virtual(&self) -> bool {
        matches!(self, Clock::Virtual { .. })
    }
}
