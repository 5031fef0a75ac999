//! The child milters found installed, defined after the platform default file.

use super::super::model::CommandOptions;
use super::super::origin::Origin;
use super::super::Config;
use crate::detect::{self, PackageOptions};

/// Defines the child milters the platform's detection finds installed, after the platform
/// default file. A milter defined already is left as it is; the later files may change or
/// remove what is defined here.
pub(super) fn define_detected(config: &mut Config) {
    let options = config.package.options.as_deref().unwrap_or("");
    // `package.options` was checked when it was read.
    let options = PackageOptions::parse(options).unwrap_or_default();
    let root = config.system_root();
    let detection = detect::detect(&config.package.platform, &root, &options);
    config.notes.extend(detection.notes);
    for found in detection.milters {
        if config.milter(&found.name).is_some() {
            config.notes.push(format!(
                "{}: {} is defined already; the detected one is not used",
                found.source, found.name
            ));
            continue;
        }
        let origin = Origin::Detected { source: found.source.clone() };
        let index = match config.define_milter(&found.name, origin.clone()) {
            Ok(index) => index,
            Err(reason) => {
                config.notes.push(format!("{}: {reason}", found.source));
                continue;
            }
        };
        let milter = &mut config.milters[index];
        milter.description = found.description;
        milter.enabled = found.enabled;
        milter.connection_spec = Some(found.connection_spec);
        milter.command = found.command;
        milter.command_options = Some(CommandOptions::Arguments(found.command_options));
        milter.applicable_conditions = found.applicable_conditions;
        for key in [
            "description",
            "enabled",
            "connection_spec",
            "command",
            "command_options",
            "applicable_conditions",
        ] {
            config.origins.set_milter(&found.name, key, origin.clone());
        }
    }
}
