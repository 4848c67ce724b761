//! Host bindings for `helio:governance@0.1.0`, generated from `wit/`.
//! Generated types stay inside `plugins`; the rest of Helio sees
//! [`super::Verdict`] and friends.

wasmtime::component::bindgen!({
    path: "../wit",
    // The widest stage world: a plain policy stage (no state import) links
    // against it too.
    world: "stateful-policy-stage",
    imports: { default: trappable },
    with: {
        "helio:governance/types.tool-call": super::call::ToolCall,
    },
});

/// The `approval-router-plugin` world. Its imports (`types`, `host`) are the
/// ones generated above, so a router links against the same host
/// implementation as a stage.
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
