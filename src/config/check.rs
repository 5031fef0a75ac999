//! `--check-config`: what the configuration defines and where each milter came from, and
//! the items that are set but do nothing here.

use std::fmt::Write;

use super::{Config, Origin};

impl Config {
    /// One line per child milter: its state, socket, conditions and origin; then the
    /// notes of loading (milters found but left out, and why) and the warnings.
    pub fn check_report(&self) -> String {
        let mut out = String::new();
        for milter in &self.milters {
            let origin = self
                .origins
                .milter(&milter.name)
                .map_or(Origin::Default, |origins| origins.defined.clone());
            let state = if milter.enabled { "enabled" } else { "disabled" };
            let spec =
                milter.connection_spec.as_ref().map_or("no socket".into(), |s| s.to_string());
            let conditions = if milter.applicable_conditions.is_empty() {
                "every mail".to_string()
            } else {
                milter.applicable_conditions.join(", ")
            };
            let _ = writeln!(
                out,
                "milter {:?}: {state}, {spec}, applies to: {conditions} ({origin})",
                milter.name
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for warning in self.warnings.iter().cloned().chain(self.compatibility_warnings()) {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }

    /// Items of the original that are accepted so its files load, but change nothing here;
    /// one line each that is set to something else than its default.
    pub fn compatibility_warnings(&self) -> Vec<String> {
        let manager = &self.manager;
        let set = [
            ("packet_buffer_size", manager.packet_buffer_size != 0),
            ("event_loop_backend", manager.event_loop_backend != "glib"),
            ("custom_configuration_directory", manager.custom_configuration_directory.is_some()),
            ("max_pending_finished_sessions", manager.max_pending_finished_sessions != 0),
        ];
        set.iter()
            .filter(|(_, differs)| *differs)
            .map(|(key, _)| {
                let key = format!("manager.{key}");
                format!("{key} ({}): accepted for compatibility; no effect", self.origin(&key))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TestDir;
    use super::super::MAIN_FILE;

    #[test]
    fn the_report_names_each_milter_its_origin_and_the_items_without_effect() {
        let dir = TestDir::new("check-report");
        let main = dir.write(
            MAIN_FILE,
            "[manager]\npacket_buffer_size = 4096\nevent_loop_backend = \"libev\"\n\
             max_pending_finished_sessions = 0\n\
             [milter.a]\nconnection_spec = \"inet:1@[127.0.0.1]\"\n\
             applicable_conditions = [\"S25R\", \"Trust\"]\n\
             [milter.b]\nenabled = false\n",
        );
        let report = dir.load().unwrap().check_report();
        let here = main.display();
        let expected = format!(
            "milter \"a\": enabled, inet:1@[127.0.0.1], applies to: S25R, Trust ({here}:5)\n\
             milter \"b\": disabled, no socket, applies to: every mail ({here}:8)\n\
             warning: manager.packet_buffer_size ({here}:2): accepted for compatibility; no effect\n\
             warning: manager.event_loop_backend ({here}:3): accepted for compatibility; no effect\n"
        );
        assert_eq!(report, expected);
    }
}
