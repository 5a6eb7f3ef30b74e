//! Sprig's date functions with fixed times (Unix 1700000000 is Tue 2023-11-14 22:13:20
//! UTC): Go layouts, `time.Parse` and `time.ParseDuration` texts and errors, Sprig's
//! duration rounding, IANA zones (TZif files built here, and the system's when it has
//! them). The clock itself is checked only for shape.

use std::path::Path;

use crate::config::zoneinfo::{LoadError, ZONEINFO_DIR, load, parse};
use crate::config::{TemplateInput, render};

fn check(cases: &[(&str, Result<&str, &str>)]) {
    let mut failed = Vec::new();
    for (text, want) in cases {
        let got = render("werf.yaml", text, &TemplateInput::default());
        let ok = match (want, &got) {
            (Ok(w), Ok(g)) => g == w,
            (Err(w), Err(e)) => e.to_string().contains(w),
            _ => false,
        };
        if !ok {
            failed.push(format!("{text:?}\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), cases.len(), failed.join("\n"));
}

#[test]
fn go_layouts_format_as_go_does() {
    check(&[
        (r#"{{ date "2006-01-02T15:04:05Z07:00" 1700000000 }}"#, Ok("2023-11-14T22:13:20Z")),
        (r#"{{ date "Mon Jan _2 15:04:05 MST 2006" 1700000000 }}"#, Ok("Tue Nov 14 22:13:20 UTC 2023")),
        (r#"{{ date "Monday, January 2, 2006 3:04PM" 1700000000 }}"#, Ok("Tuesday, November 14, 2023 10:13PM")),
        (r#"{{ date "06 1 2 3 4 5 pm|01 02 03 04 05" 1700000000 }}"#, Ok("23 11 14 10 13 20 pm|11 14 10 13 20")),
        (r#"{{ date "002 __2 _2006" 1700000000 }}"#, Ok("318 318 _2023")),
        (r#"{{ date "Z07:00 Z0700 -0700 -07 -07:00:00 -070000" 1700000000 }}"#, Ok("Z Z +0000 +00 +00:00:00 +000000")),
        (r#"{{ date "2006-01-02 15:04:05.000000" 1700000000 }}"#, Ok("2023-11-14 22:13:20.000000")),
        (r#"{{ date "15:04:05.999" 1700000000 }}"#, Ok("22:13:20")),
        (r#"{{ date "Jan _2" 1699000000 }}"#, Ok("Nov  3")),
        (r#"{{ date "2006-01-02" -86400 }}"#, Ok("1969-12-31")),
        (
            r#"{{ toDate "2006-01-02 15:04:05.000" "2024-05-01 07:08:09.123" | date "Jan _2 15:04:05.000 MST" }}"#,
            Ok("May  1 07:08:09.123 UTC"),
        ),
        (r#"{{ toDate "2006-01-02 15:04:05" "2024-05-01 07:08:09.5" | date "05,000 .9 .99" }}"#, Ok("09,500 .5 .5")),
        (r#"{{ htmlDate 1700000000 }}"#, Ok("2023-11-14")),
        (r#"{{ htmlDateInZone 1700000000 "UTC" }}"#, Ok("2023-11-14")),
        (r#"{{ dateInZone "15:04 MST" 1700000000 "UTC" }}"#, Ok("22:13 UTC")),
        (r#"{{ date_in_zone "15:04 MST" 1700000000 "Local" }}"#, Ok("22:13 UTC")),
        (r#"{{ dateInZone "15:04" 1700000000 "" }}"#, Ok("22:13")),
        // A time with an offset is shown in the zone asked for.
        (r#"{{ toDate "2006-01-02T15:04:05Z07:00" "2024-05-01T10:00:00+02:00" | date "15:04 MST" }}"#, Ok("08:00 UTC")),
    ]);
}

#[test]
fn times_round_trip_as_go_prints_them() {
    check(&[
        (r#"{{ toDate "2006-01-02" "2024-05-01" }}"#, Ok("2024-05-01 00:00:00 +0000 UTC")),
        (r#"{{ toDate "2006-01-02" "2024-05-01" | unixEpoch }}"#, Ok("1714521600")),
        (r#"{{ toDate "2006-01-02" "1969-12-31" | unixEpoch }}"#, Ok("-86400")),
        (r#"{{ $t := toDate "2006-01-02" "2024-05-01" }}{{ $t | date "Jan 2" }}"#, Ok("May 1")),
        (
            r#"{{ toDate "2006-01-02T15:04:05Z07:00" "2024-05-01T10:00:00+02:00" }}"#,
            Ok("2024-05-01 10:00:00 +0200 +0200"),
        ),
        (r#"{{ toDate "2006-01-02T15:04:05Z07:00" "2024-05-01T10:00:00+02:00" | unixEpoch }}"#, Ok("1714550400")),
        (
            r#"{{ toDate "2006-01-02T15:04:05Z07:00" "2024-05-01T10:00:00-07:00" | dateModify "1h" }}"#,
            Ok("2024-05-01 11:00:00 -0700 -0700"),
        ),
        (r#"{{ toDate "2006-01-02 MST" "2024-05-01 CEST" }}"#, Ok("2024-05-01 00:00:00 +0000 CEST")),
        (r#"{{ toDate "2006-01-02 MST" "2024-05-01 CEST" | unixEpoch }}"#, Ok("1714521600")),
        (r#"{{ toDate "3:04PM" "12:30AM" }}"#, Ok("0000-01-01 00:30:00 +0000 UTC")),
        (r#"{{ toDate "Jan _2 2006" "may  1 2024" | htmlDate }}"#, Ok("2024-05-01")),
        (r#"{{ toDate "2006 002" "2024 060" | htmlDate }}"#, Ok("2024-02-29")),
        (r#"{{ toDate "2006-01-02" "nope" }}"#, Ok("0001-01-01 00:00:00 +0000 UTC")),
        (r#"{{ toDate "2006-01-02" "nope" | unixEpoch }}"#, Ok("-62135596800")),
        (r#"{{ mustToDate "2006-01-02" "2024-05-01" | date "2006" }}"#, Ok("2024")),
        (
            r#"{{ mustToDate "2006-01-02" "x" }}"#,
            Err(r#"parsing time "x" as "2006-01-02": cannot parse "x" as "2006""#),
        ),
        (r#"{{ mustToDate "2006-01-02" "2024-13-01" }}"#, Err(r#"parsing time "2024-13-01": month out of range"#)),
        (r#"{{ mustToDate "2006-01-02" "2023-02-29" }}"#, Err(r#"parsing time "2023-02-29": day out of range"#)),
        (r#"{{ mustToDate "2006" "2024x" }}"#, Err(r#"parsing time "2024x": extra text: "x""#)),
        (r#"{{ mustToDate "2006-01-02" "2024/05/01" }}"#, Err(r#"cannot parse "/05/01" as "-""#)),
        (r#"{{ mustToDate "2006 -07:00" "2024 +aé:00" }}"#, Err(r#"cannot parse "+aé:00" as "-07:00""#)),
        (r#"{{ mustToDate "2006 -0700" "2024 +0260" }}"#, Ok("2024-01-01 00:00:00 +0300 +0300")),
        (
            r#"{{ mustToDate "2006 -0700" "2024 +2500" }}"#,
            Err(r#"parsing time "2024 +2500": time zone offset hour out of range"#),
        ),
    ]);
}

#[test]
fn date_modify_takes_go_durations() {
    let t = r#"toDate "2006-01-02" "2024-05-01""#;
    let cases: Vec<(String, Result<&str, &str>)> = vec![
        (format!("{{{{ {t} | dateModify \"-1.5h\" }}}}"), Ok("2024-04-30 22:30:00 +0000 UTC")),
        (format!("{{{{ {t} | dateModify \"1h15m\" }}}}"), Ok("2024-05-01 01:15:00 +0000 UTC")),
        (format!("{{{{ {t} | date_modify \"30m\" }}}}"), Ok("2024-05-01 00:30:00 +0000 UTC")),
        (format!("{{{{ {t} | dateModify \"+1.25s\" }}}}"), Ok("2024-05-01 00:00:01.25 +0000 UTC")),
        (format!("{{{{ {t} | dateModify \"1500us\" }}}}"), Ok("2024-05-01 00:00:00.0015 +0000 UTC")),
        (format!("{{{{ {t} | dateModify \"1µs2ns\" }}}}"), Ok("2024-05-01 00:00:00.000001002 +0000 UTC")),
        (format!("{{{{ {t} | dateModify \"0\" }}}}"), Ok("2024-05-01 00:00:00 +0000 UTC")),
        // A bad duration leaves the time as it is; the `must` forms refuse it.
        (format!("{{{{ {t} | dateModify \"1d\" }}}}"), Ok("2024-05-01 00:00:00 +0000 UTC")),
        (format!("{{{{ {t} | mustDateModify \"1d\" }}}}"), Err(r#"time: unknown unit "d" in duration "1d""#)),
        (format!("{{{{ {t} | must_date_modify \"90\" }}}}"), Err(r#"time: missing unit in duration "90""#)),
        (format!("{{{{ {t} | mustDateModify \"\" }}}}"), Err(r#"time: invalid duration """#)),
        (format!("{{{{ {t} | mustDateModify \".h\" }}}}"), Err(r#"time: invalid duration ".h""#)),
        (format!("{{{{ {t} | mustDateModify \"9999999999h\" }}}}"), Err(r#"time: invalid duration "9999999999h""#)),
        (
            "{{ dateModify \"1h\" \"2024-05-01\" }}".to_owned(),
            Err("dateModify: wrong type for value; expected time.Time"),
        ),
        ("{{ unixEpoch 5 }}".to_owned(), Err("unixEpoch: wrong type for value; expected time.Time")),
    ];
    let cases: Vec<(&str, Result<&str, &str>)> = cases.iter().map(|(t, w)| (t.as_str(), *w)).collect();
    check(&cases);
}

#[test]
fn durations_print_as_sprig_does() {
    check(&[
        ("{{ duration 95 }}", Ok("1m35s")),
        ("{{ duration \"3600\" }}", Ok("1h0m0s")),
        ("{{ duration -90 }}", Ok("-1m30s")),
        ("{{ duration 0 }}", Ok("0s")),
        ("{{ duration \"x\" }}", Ok("0s")),
        ("{{ duration 1.5 }}", Ok("0s")),
        ("{{ durationRound \"2h10m\" }}", Ok("2h")),
        ("{{ durationRound \"-73h\" }}", Ok("3d")),
        ("{{ durationRound \"800h\" }}", Ok("1mo")),
        ("{{ durationRound \"17521h\" }}", Ok("2y")),
        // Sprig compares with `>`: exactly an hour is still minutes.
        ("{{ durationRound \"1h\" }}", Ok("60m")),
        ("{{ durationRound 90000000000 }}", Ok("1m")),
        ("{{ durationRound \"bad\" }}", Ok("0s")),
        ("{{ durationRound \"1s\" }}", Ok("0s")),
    ]);
}

#[test]
fn zones_come_from_the_zoneinfo_directory() {
    check(&[
        // Names Go would not load give Sprig's fallback, UTC; nothing outside is read.
        (r#"{{ htmlDateInZone 1700000000 "../../etc/passwd" }}"#, Ok("2023-11-14")),
        (r#"{{ dateInZone "15:04 MST" 1700000000 "/etc/localtime" }}"#, Ok("22:13 UTC")),
        (r#"{{ date (repeat 2000000 "2006") 0 }}"#, Err("a value exceeds 16 MiB")),
        (r#"{{ date "2006" }}"#, Err("date: wrong number of args: want 2 got 1")),
        // Extremes render something, as Go does, rather than overflow.
        (r#"{{ dateInZone "2006" 9223372036854775807 "Europe/Berlin" | len | lt 3 }}"#, Ok("true")),
        (r#"{{ date "2006" -9223372036854775807 | len | lt 3 }}"#, Ok("true")),
        (r#"{{ toDate "2006" "9999" | dateModify "2562047h" }}"#, Ok("10291-04-11 23:00:00 +0000 UTC")),
        (
            r#"{{ toDate "2006" "9999" | dateModify "2562047h" | dateModify "2562047h" }}"#,
            Ok("10583-07-21 22:00:00 +0000 UTC"),
        ),
        (r#"{{ toDate "2006" "0001" | dateModify "-2562047h" | unixEpoch }}"#, Ok("-71358966000")),
        (r#"{{ toDate "2006" "0001" | dateModify "-2562047h" | date "2006-01-02" }}"#, Ok("-0292-09-22")),
        (r#"{{ duration 9223372036854775807 }}"#, Ok("2562047h47m16.854775807s")),
        (r#"{{ durationRound -9223372036854775807 }}"#, Ok("292y")),
    ]);
    if Path::new(ZONEINFO_DIR).is_dir() {
        check(&[
            (
                r#"{{ dateInZone "2006-01-02 15:04 MST -0700" 1700000000 "Europe/Berlin" }}"#,
                Ok("2023-11-14 23:13 CET +0100"),
            ),
            (r#"{{ date_in_zone "15:04 MST" 1690000000 "Europe/Berlin" }}"#, Ok("06:26 CEST")),
            (r#"{{ dateInZone "15:04 MST Z07:00" 1700000000 "America/New_York" }}"#, Ok("17:13 EST -05:00")),
            (r#"{{ htmlDateInZone 1700000000 "Asia/Tokyo" }}"#, Ok("2023-11-15")),
            (r#"{{ dateInZone "15:04 MST" 1700000000 "Nowhere/City" }}"#, Ok("22:13 UTC")),
        ]);
    } else {
        check(&[(
            r#"{{ dateInZone "15:04" 0 "Europe/Berlin" }}"#,
            Err(r#"dateInZone: time zone "Europe/Berlin": no time zone database at /usr/share/zoneinfo"#),
        )]);
    }
}

/// A TZif file: version 2 with an empty version 1 block, or version 1 alone.
fn tzif(v2: bool, transitions: &[(i64, u8)], types: &[(i32, bool, &str)], footer: &str) -> Vec<u8> {
    let mut chars = Vec::new();
    let mut ttinfo = Vec::new();
    for (off, dst, abbr) in types {
        ttinfo.extend(off.to_be_bytes());
        ttinfo.push(u8::from(*dst));
        ttinfo.push(chars.len() as u8);
        chars.extend(abbr.as_bytes());
        chars.push(0);
    }
    let header = |version: u8, counts: [usize; 6]| {
        let mut h = b"TZif".to_vec();
        h.push(version);
        h.extend([0; 15]);
        for c in counts {
            h.extend((c as u32).to_be_bytes());
        }
        h
    };
    let counts = [0, 0, 0, transitions.len(), types.len(), chars.len()];
    let mut out = Vec::new();
    if v2 {
        out.extend(header(b'2', [0; 6]));
    }
    out.extend(header(if v2 { b'2' } else { 0 }, counts));
    for (at, _) in transitions {
        if v2 {
            out.extend(at.to_be_bytes());
        } else {
            out.extend((*at as i32).to_be_bytes());
        }
    }
    out.extend(transitions.iter().map(|(_, i)| *i));
    out.extend(ttinfo);
    out.extend(chars);
    if v2 {
        out.extend(format!("\n{footer}\n").as_bytes());
    }
    out
}

#[test]
fn tzif_transitions_and_posix_rules() {
    let cet = [(3600, false, "CET"), (7200, true, "CEST")];
    let berlin = parse(&tzif(true, &[(0, 0)], &cet, "CET-1CEST,M3.5.0,M10.5.0/3")).unwrap();
    let sydney = parse(&tzif(true, &[], &[(36000, false, "AEST")], "AEST-10AEDT,M10.1.0,M4.1.0/3")).unwrap();
    let fixed = parse(&tzif(true, &[], &[(-10800, false, "-03")], "<-03>3")).unwrap();
    let v1 = parse(&tzif(false, &[(1000, 1), (2000, 0)], &cet, "")).unwrap();
    // (zone, Unix time, offset, abbreviation): 2024's switches, either side.
    let cases = [
        (&berlin, -10, 3600, "CET"),
        (&berlin, 1_711_846_799, 3600, "CET"),
        (&berlin, 1_711_846_800, 7200, "CEST"),
        (&berlin, 1_729_990_799, 7200, "CEST"),
        (&berlin, 1_729_990_800, 3600, "CET"),
        (&sydney, 1_712_419_199, 39600, "AEDT"),
        (&sydney, 1_712_419_200, 36000, "AEST"),
        (&sydney, 1_728_143_999, 36000, "AEST"),
        (&sydney, 1_728_144_000, 39600, "AEDT"),
        (&fixed, 1_700_000_000, -10800, "-03"),
        (&v1, 999, 3600, "CET"),
        (&v1, 1500, 7200, "CEST"),
        (&v1, 2500, 3600, "CET"),
    ];
    for (zone, at, offset, abbr) in cases {
        assert_eq!(zone.lookup(at), (offset, abbr.to_owned()), "{at}");
    }
    assert_eq!(parse(b"not a zone"), None);
    let whole = tzif(true, &[(0, 0)], &cet, "CET-1");
    assert_eq!(parse(&whole[..whole.len() - 20]), None);
    assert_eq!(parse(&tzif(true, &[(0, 5)], &cet, "")), None);
}

#[test]
fn zone_names_stay_inside_the_directory() {
    let dir = std::env::temp_dir().join(format!("slipway-zoneinfo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("Test")).unwrap();
    std::fs::write(dir.join("Test/Zone"), tzif(true, &[], &[(-10800, false, "-03")], "<-03>3")).unwrap();
    std::fs::write(dir.join("zone.tab"), "# not a zone\n").unwrap();
    assert_eq!(load(&dir, "Test/Zone").unwrap().lookup(0), (-10800, "-03".to_owned()));
    for name in ["Test/Nowhere", "zone.tab", "Test", "../Test/Zone", "Test/../Test/Zone", "/etc/localtime", "\\x"] {
        assert_eq!(load(&dir, name), Err(LoadError::Unknown), "{name}");
    }
    assert_eq!(load(&dir.join("missing"), "Test/Zone"), Err(LoadError::NoDatabase));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_clock_has_the_right_shape() {
    let input = TemplateInput::default();
    let render = |t: &str| render("werf.yaml", t, &input).unwrap();
    let now = render("{{ now }}");
    let shape = regex_lite::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})? \+0000 UTC$").unwrap();
    assert!(shape.is_match(&now), "{now}");
    let year: i64 = render("{{ now | date \"2006\" }}").parse().unwrap();
    assert!(year >= 2024, "{year}");
    // Sprig formats the current time for anything that is not a time.
    assert_eq!(render("{{ date \"2006\" \"not a time\" }}"), year.to_string());
    assert_eq!(render("{{ ago now }}"), "0s");
    assert_eq!(render("{{ now | dateModify \"-2h\" | ago }}"), "2h0m0s");
    assert_eq!(render("{{ now | dateModify \"-49h\" | durationRound }}"), "2d");
    let ago = render("{{ ago 1700000000 }}");
    assert!(regex_lite::Regex::new(r"^\d+h\d+m\d+s$").unwrap().is_match(&ago), "{ago}");
    assert_eq!(render("{{ toDate \"2006\" \"2001\" | durationRound | trimSuffix \"y\" | int | lt 20 }}"), "true");
}
