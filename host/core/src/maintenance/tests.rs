use super::*;
use chrono::TimeZone;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_one_off_window_is_open_from_its_start_until_just_before_its_end() {
    let w = Window::once(None, utc(2026, 12, 24, 22, 0), utc(2026, 12, 25, 2, 0)).unwrap();
    assert!(w.open_at(utc(2026, 12, 24, 21, 59)).is_none());
    let o = w
        .open_at(utc(2026, 12, 24, 22, 0))
        .expect("open at its start");
    assert_eq!(o.end, utc(2026, 12, 25, 2, 0));
    assert!(w.open_at(utc(2026, 12, 25, 1, 59)).is_some());
    assert!(
        w.open_at(utc(2026, 12, 25, 2, 0)).is_none(),
        "closed at its end"
    );
}

#[test]
fn a_one_off_window_must_end_after_it_starts() {
    let t = utc(2026, 12, 24, 22, 0);
    assert!(
        Window::once(None, t, t)
            .unwrap_err()
            .contains("must be after")
    );
}

#[test]
fn a_recurring_window_follows_its_zone_across_daylight_saving() {
    // 02:00 Paris on Sundays for 2 h: 01:00 UTC in winter, 00:00 UTC in summer.
    let w = Window::recurring(None, "0 2 * * SUN", 2 * HOUR, Some("Europe/Paris")).unwrap();
    // Sunday 2026-12-06, winter (UTC+1).
    assert!(w.open_at(utc(2026, 12, 6, 0, 59)).is_none());
    let o = w
        .open_at(utc(2026, 12, 6, 1, 0))
        .expect("open at 02:00 Paris");
    assert_eq!(
        (o.start, o.end),
        (utc(2026, 12, 6, 1, 0), utc(2026, 12, 6, 3, 0))
    );
    assert!(w.open_at(utc(2026, 12, 6, 2, 59)).is_some());
    assert!(w.open_at(utc(2026, 12, 6, 3, 0)).is_none());
    // Sunday 2027-06-06, summer (UTC+2).
    let o = w
        .open_at(utc(2027, 6, 6, 0, 30))
        .expect("open at 02:30 Paris");
    assert_eq!(o.start, utc(2027, 6, 6, 0, 0));
    // Not on a Monday.
    assert!(w.open_at(utc(2026, 12, 7, 1, 30)).is_none());
}

#[test]
fn a_window_open_across_midnight_is_found_from_after_midnight() {
    let w = Window::recurring(None, "30 23 * * *", 2 * HOUR, None).unwrap();
    let o = w
        .open_at(utc(2026, 12, 2, 0, 45))
        .expect("opened at 23:30 the day before");
    assert_eq!(o.start, utc(2026, 12, 1, 23, 30));
    assert_eq!(o.end, utc(2026, 12, 2, 1, 30));
}

#[test]
fn upcoming_lists_the_open_one_then_the_next_of_every_window_in_order() {
    let s = Schedule::new(vec![
        Window::recurring(Some("nightly".into()), "0 3 * * *", HOUR, None).unwrap(),
        Window::once(
            Some("migration".into()),
            utc(2026, 12, 2, 12, 0),
            utc(2026, 12, 2, 14, 0),
        )
        .unwrap(),
    ]);
    let next = s.upcoming(utc(2026, 12, 2, 3, 30), 3);
    let starts: Vec<_> = next.iter().map(|o| (o.start, o.name.clone())).collect();
    assert_eq!(
        starts,
        [
            (utc(2026, 12, 2, 3, 0), Some("nightly".into())),
            (utc(2026, 12, 2, 12, 0), Some("migration".into())),
            (utc(2026, 12, 3, 3, 0), Some("nightly".into())),
        ]
    );
}

#[test]
fn bad_expressions_zones_and_durations_name_the_field() {
    assert_eq!(
        Window::recurring(None, "every sunday", HOUR, None)
            .unwrap_err()
            .0,
        "cron"
    );
    assert_eq!(
        Window::recurring(None, "0 2 * * SUN", HOUR, Some("Mars/Olympus"))
            .unwrap_err()
            .0,
        "tz"
    );
    assert_eq!(
        Window::recurring(None, "0 2 * * SUN", Duration::ZERO, None)
            .unwrap_err()
            .0,
        "duration"
    );
    assert_eq!(
        Window::recurring(None, "0 0 31 2 *", HOUR, None)
            .unwrap_err()
            .0,
        "cron"
    );
}

#[test]
fn the_schedule_reports_the_window_that_closes_last() {
    let s = Schedule::new(vec![
        Window::once(None, utc(2026, 12, 2, 10, 0), utc(2026, 12, 2, 11, 0)).unwrap(),
        Window::once(None, utc(2026, 12, 2, 10, 30), utc(2026, 12, 2, 12, 0)).unwrap(),
    ]);
    assert_eq!(
        s.open_at(utc(2026, 12, 2, 10, 45)).unwrap().end,
        utc(2026, 12, 2, 12, 0)
    );
    assert!(s.open_at(utc(2026, 12, 2, 12, 0)).is_none());
}
