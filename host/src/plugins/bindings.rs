//! Host bindings, one per contract version Helio loads: `v2` for
//! `helio:governance@0.2.0` (`wit/`) and `v1` for `@0.1.0`
//! (`wit/since_v0.1.0/`, frozen). Generated types stay inside `plugins`;
//! the rest of Helio sees [`super::Verdict`] and friends.

/// `helio:governance@0.1.0`: what components built before 0.2 import and
/// export.
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        // The widest stage world: a plain policy stage (no state import)
        // links against it too.
        world: "stateful-policy-stage",
        imports: { default: trappable },
        with: {
            "helio:governance/types.tool-call": crate::plugins::call::ToolCall,
        },
    });

    /// The `approval-router-plugin` world. Its imports (`types`, `host`)
    /// are the ones generated above, so a router links against the same
    /// host implementation as a stage.
    pub mod router {
        wasmtime::component::bindgen!({
            path: "../wit/since_v0.1.0",
            world: "approval-router-plugin",
            imports: { default: trappable },
            with: {
                "helio:governance/types": super::helio::governance::types,
                "helio:governance/host": super::helio::governance::host,
            },
        });
    }
}

/// `helio:governance@0.2.0`, the current contract.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        // The widest stage world: imports every host interface, exports
        // `stage` and `observer`. Components export `stage` and may export
        // `observer`; each is looked up on its own (see `contract`).
        world: "observing-policy-stage",
        imports: { default: trappable },
        with: {
            "helio:governance/types.tool-call": crate::plugins::call::ToolCall,
        },
    });

    /// The `approval-router-plugin` world of 0.2.
    pub mod router {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "approval-router-plugin",
            imports: { default: trappable },
            with: {
                "helio:governance/types": super::helio::governance::types,
                "helio:governance/host": super::helio::governance::host,
            },
        });
    }

    /// The `spend-extractor-plugin` world of 0.2 (0.1 declared it, but no
    /// Helio loaded it, so 0.2 is its first loadable version).
    pub mod extractor {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "spend-extractor-plugin",
            imports: { default: trappable },
            with: {
                "helio:governance/types": super::helio::governance::types,
                "helio:governance/host": super::helio::governance::host,
            },
        });
    }
}
