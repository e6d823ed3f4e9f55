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
