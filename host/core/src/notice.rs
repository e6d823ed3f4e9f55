//! A notification: one alert (or a reminder that a site is still down) on its way to one
//! notifier, as the store's outbox holds it and a notification service shapes it.

use crate::alert::{Alert, AlertKind};
use chrono::{DateTime, Utc};

/// What a notification says: an alert, or a reminder that a site is still down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Alert(AlertKind),
    /// The site of a down alert is still down.
    Reminder,
}

impl NoticeKind {
    pub const DOWN: Self = Self::Alert(AlertKind::Down);
    pub const RECOVERED: Self = Self::Alert(AlertKind::Recovered);

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert(k) => k.as_str(),
            Self::Reminder => "reminder",
        }
    }

    /// The kind a stored name stands for (`down`, `reminder`).
    pub fn parse(s: &str) -> Self {
        match s {
            "reminder" => Self::Reminder,
            _ => Self::Alert(s.parse().unwrap_or(AlertKind::Down)),
        }
    }

    /// Whether it opens (or keeps open) an incident, rather than closing one.
    pub fn is_firing(self) -> bool {
        match self {
            Self::Alert(k) => k.is_firing(),
            Self::Reminder => true,
        }
    }

    /// The condition of the incident it opens or closes (a reminder's is down).
    pub fn condition(self) -> crate::alert::Condition {
        match self {
            Self::Alert(k) => k.condition(),
            Self::Reminder => crate::alert::Condition::Down,
        }
    }
}

impl From<AlertKind> for NoticeKind {
    fn from(k: AlertKind) -> Self {
        Self::Alert(k)
    }
}

/// One notification with its alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Its id in the outbox (0 for a test notification).
    pub id: i64,
    pub alert_id: i64,
    pub kind: NoticeKind,
    /// When it was queued: the alert's time, or the reminder's.
    pub created: DateTime<Utc>,
    /// The notifier's formatter rendering.
    pub body: Option<String>,
    pub attempts: u32,
    pub alert: Alert,
}
