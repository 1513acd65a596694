//! `pt clock reset-high-water`, through the real `pt` binary: a high-water mark that a clock
//! once wrong towards the future left ahead of the real time is explained by `pt status`,
//! refused while a daemon holds the state, and cleared (with the schedule cursors and firing
//! records the wrong clock moved ahead) when none does, so schedules are trusted again.

mod common;

use std::time::Duration;

use common::*;
use petit::store::Store;
use petit::time::Timestamp;

const HOURLY: &str =
    "id: hourly\nschedule: \"0 * * * *\"\ntasks:\n  - id: a\n    command: echo\n    args: [hi]\n";

fn far_future() -> Timestamp {
    Timestamp::parse_rfc3339("2099-01-01T00:00:00Z").unwrap()
}

#[test]
fn issue_13_a_future_high_water_mark_is_explained_and_reset_by_hand() {
    let b = Bench::new();
    b.job("hourly", HOURLY);
    let db = b.state.join("petit.redb");
    std::fs::create_dir_all(&b.state).unwrap();
    // What a daemon leaves after running under a clock set to 2099: the mark, the job's
    // cursor and a firing record, all in 2099.
    {
        let store = Store::open(&db).unwrap();
        store
            .write(|tx| {
                tx.raise_high_water(far_future())?;
                tx.set_cursor("hourly", far_future())?;
                tx.record_firing("hourly", far_future(), petit::core::run::RunId::new(1))
            })
            .unwrap();
    }

    // With a daemon: its status says how to clear it, and the reset is refused (exit 3).
    let daemon = b.start_daemon(&[]);
    let status = b.status().unwrap();
    assert_eq!(status["clock"]["trusted"], false, "{status}");
    let state = status["clock"]["state"].as_str().unwrap_or_default();
    assert!(
        state.contains("behind the latest recorded time 2099-01-01")
            && state.contains("pt clock reset-high-water"),
        "{state}"
    );
    let o = b.pt(&["clock", "reset-high-water"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(&format!("by pt run (pid {}", daemon.pid()))
            && stderr(&o).contains("stop it first"),
        "{}",
        stderr(&o)
    );
    assert!(daemon.sigterm().success());
    assert_eq!(
        Store::open(&db).unwrap().high_water().unwrap(),
        far_future(),
        "a refused reset changed the mark"
    );

    // Without one: `pt status` reads the database and gives the same remedy.
    let o = b.pt(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("behind the latest recorded time 2099-01-01")
            && stdout(&o).contains("pt clock reset-high-water"),
        "{}",
        stdout(&o)
    );

    let o = b.pt(&["clock", "reset-high-water"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("from 2099-01-01T00:00:00")
            && stdout(&o).contains("1 schedule cursor(s) moved back")
            && stdout(&o).contains("1 firing record(s)"),
        "{}",
        stdout(&o)
    );
    {
        let store = Store::open(&db).unwrap();
        let now = petit::clock::now();
        assert!(store.high_water().unwrap() <= now);
        assert!(store.cursor("hourly").unwrap().unwrap() <= now);
        assert_eq!(store.firing("hourly", far_future()).unwrap(), None);
        let reset = store.high_water_reset().unwrap().unwrap();
        assert_eq!(reset.from, far_future());
    }
    let o = b.pt(&["status"]);
    assert!(
        stdout(&o).contains("reset by hand at") && !stdout(&o).contains("behind"),
        "{}",
        stdout(&o)
    );
    let o = b.pt(&["clock", "reset-high-water"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to reset"), "{}", stdout(&o));

    // The daemon trusts the clock again and the job's next firing is near, not in 2099.
    let _daemon = b.start_daemon(&[]);
    let trusted = wait_until(Duration::from_secs(20), || {
        b.status().is_some_and(|s| s["clock"]["trusted"] == true)
    });
    assert!(trusted, "{:?}\n{}", b.status(), b.daemon_log());
    let status = b.status().unwrap();
    let next = status["next"][0]["next"].as_str().unwrap_or_default();
    assert!(!next.is_empty() && !next.starts_with("2099"), "{status}");
}
