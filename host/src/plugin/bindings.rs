//! Host bindings generated from `wit/plugin.wit`: one module per world, sharing the `types` and
//! `host` interfaces.

pub mod checker {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "checker",
        imports: { default: trappable },
        exports: { default: async },
    });
}

pub mod formatter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "alert-formatter",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "sitewatch:plugin/types": super::checker::sitewatch::plugin::types,
            "sitewatch:plugin/host": super::checker::sitewatch::plugin::host,
        },
    });
}

pub use checker::sitewatch::plugin::host::Level;
pub use checker::sitewatch::plugin::types;

/// The WIT alert a formatter is given for `alert`.
pub fn alert_input(alert: &crate::alert::Alert, recent_errors: Vec<String>) -> types::Alert {
    types::Alert {
        // Formatters of WIT 0.1 know two kinds; the alert stage gives them only alerts of the
        // down condition (the others keep the built-in message).
        kind: if alert.kind.is_firing() {
            types::AlertKind::Down
        } else {
            types::AlertKind::Recovered
        },
        site: alert.site.to_string(),
        url: alert.url.to_string(),
        availability: alert.availability,
        time: crate::clock::rfc3339_seconds(alert.time),
        down_since: alert.down_since.map(crate::clock::rfc3339_seconds),
        down_for_seconds: alert.down_for.map(|d| d.as_secs_f64()),
        recent_errors,
        message: alert.message.clone(),
    }
}
